package redistest

import (
	"reflect"
	"testing"
)

func TestParseClusterNodes(t *testing.T) {
	const nodes = "07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,host slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected\n" +
		"e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460 5462 [5461->-292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f] [93-<-292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f]\n" +
		"292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30002@31002 master,fail? - 0 1426238316232 2 disconnected\n"
	got, err := parseClusterNodes(nodes)
	if err != nil {
		t.Fatal(err)
	}
	want := []NodeInfo{
		{ID: "07c37dfeb235213a872192d90877d0cd55635b91", Addr: "127.0.0.1:30004", Flags: []string{"slave"},
			MasterID: "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca"},
		{ID: "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca", Addr: "127.0.0.1:30001", Flags: []string{"myself", "master"},
			Slots: [][2]int{{0, 5460}, {5462, 5462}}},
		{ID: "292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f", Addr: "127.0.0.1:30002", Flags: []string{"master", "fail?"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v; want %+v", got, want)
	}
	if !got[1].Master() || got[0].Master() || !got[2].Failed() || got[1].Failed() || got[1].SlotCount() != 5462 {
		t.Errorf("Master, Failed or SlotCount wrong for %+v", got)
	}
}

package test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tether-fabric/tether/contract"
	"github.com/tether-fabric/tether/internal/tethertest"
)

// TestSecondLeafWithSameCredsRefused: a second edge process started with
// the same bundle while the first is linked is refused by the hubs on
// every attempt, whichever hub it reaches, and the hubs say why; the first
// keeps its link. Once the first stops, the second links.
func TestSecondLeafWithSameCredsRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("3-hub cluster: skipped in -short")
	}
	store := tethertest.NewStore(t)
	var hubLogs [3]tethertest.LogBuffer
	hubs := tethertest.RunClusterLogged(t, store, 3, func(i int) *tethertest.LogBuffer { return &hubLogs[i] })
	bundle := tethertest.WriteBundle(t, store, "plant-7", hubs...)
	first := tethertest.RunLeaf(t, tethertest.LeafConfig(t, bundle), nil)
	tethertest.WaitLinked(t, first, 10*time.Second)
	firstHub := first.Link().Hub

	var secondLog tethertest.LogBuffer
	second := tethertest.RunLeaf(t, tethertest.LeafConfig(t, bundle), secondLog.Logger())
	// Refused several times (it retries every 250-500 ms here), wherever
	// it lands, while the first keeps its link.
	tethertest.WaitFor(t, 20*time.Second, func() error {
		n := 0
		for i := range hubLogs {
			n += hubLogs[i].Count("second link for one edge identity refused")
		}
		if n < 3 {
			return fmt.Errorf("hubs refused the second run %d times, want 3", n)
		}
		return nil
	})
	if !first.Link().Connected || first.Link().Hub != firstHub {
		t.Fatalf("the first run lost its link: %+v", first.Link())
	}
	// 'tether status' shows the refused run.
	view := fleetView(t, store, hubs[0], tethertest.ConnectCloud(t, store, hubs[0]), "plant-7")
	if r := view.RefusedLink; r == nil || r.Reason != contract.RefusedSecondRun {
		t.Errorf("status refused_link = %+v, want a second run refused", r)
	}

	// The second run's own log points at the cause, once (at most once a
	// minute), and never claims its link is up; 'tether leaf status' shows
	// the refusal.
	const cause = "most likely another process is linked with this edge's identity"
	waitLogs(t, 10*time.Second, map[string]*tethertest.LogBuffer{"second": &secondLog},
		map[string]string{"second": cause})
	tethertest.WaitFor(t, 10*time.Second, func() error {
		if n := secondLog.Count(`msg="link closed before it held"`); n < 6 {
			return fmt.Errorf("the second run's link was closed %d times, want 6", n)
		}
		return nil
	})
	if n := secondLog.Count(`msg="link up"`); n != 0 {
		t.Errorf("the refused second run logged \"link up\" %d times, want none:\n%s", n, secondLog.String())
	}
	if n := secondLog.Count(cause); n != 1 {
		t.Errorf("the second run logged the refusal %d times, want once", n)
	}
	if out := string(runBinary(t, "leaf", "status", "--url", second.ClientURL())); !strings.Contains(out, "link refused: the hubs keep closing this edge's link right after it opens: "+cause) {
		t.Errorf("tether leaf status of the refused run does not show the refusal:\n%s", out)
	}
	// The first stops: the second links and stays, and says so.
	if err := first.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	tethertest.WaitLinked(t, second, 15*time.Second)
	waitLogs(t, 10*time.Second, map[string]*tethertest.LogBuffer{"second": &secondLog},
		map[string]string{"second": `msg="link up"`})
	if r := second.Link().Refused; r != "" {
		t.Errorf("linked for good, the second run still shows the refusal %q", r)
	}
}

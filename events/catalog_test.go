package events

import (
	"testing"
	"time"
)

func TestDecideImport(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := SampleContent{SampleID: "a", InstanceID: "x__a", Patch: "1"}
	b := SampleContent{SampleID: "b", InstanceID: "x__b", Patch: "1"}
	var d Dataset
	plan, err := DecideImport(&d, "set", "first", "", []SampleContent{a, b}, at)
	if err != nil || len(plan.Events) != 3 || plan.New != 2 || plan.Events[0].Type != DatasetCreated {
		t.Fatalf("first import: %+v %v", plan, err)
	}
	for i, e := range plan.Events {
		e.Stream, e.Version = DatasetStream("set"), int64(i+1)
		if err := d.Apply(e); err != nil {
			t.Fatal(err)
		}
	}
	// The same rows again: nothing. The same decision twice: the same event ids (a retried append
	// is recognised by the store).
	again, _ := DecideImport(&d, "set", "", "", []SampleContent{a, b}, at.Add(time.Hour))
	if len(again.Events) != 0 || again.Unchanged != 2 {
		t.Fatalf("same content: %+v", again)
	}
	b2 := b
	b2.Patch, b2.FailToPass = "2", []string{"T"}
	p1, _ := DecideImport(&d, "set", "second", "", []SampleContent{a, b2}, at)
	p2, _ := DecideImport(&d, "set", "second", "", []SampleContent{a, b2}, at)
	if len(p1.Events) != 2 || p1.Events[0].Type != DatasetDescribed || p1.Versioned != 1 || p1.Events[1].ID != p2.Events[1].ID {
		t.Fatalf("changed content: %+v", p1)
	}
	var added SampleVersionAddedData
	if err := p1.Events[1].Decode(&added); err != nil || added.Version != 2 || added.VersionDescription != "changed: fail_to_pass, patch" || added.Patch != "2" {
		t.Fatalf("new version: %+v %v", added, err)
	}
	if _, err := DecideImport(&Dataset{}, "bad name", "", "", nil, at); err == nil {
		t.Fatal("a dataset name with a space was accepted")
	}
}

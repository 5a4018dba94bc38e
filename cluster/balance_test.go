package cluster

import (
	"encoding/json"
	"maps"
	"slices"
	"testing"

	"github.com/segmentio/kafka-go"
)

// TestAssignSticky: partitions stay with their members as far as a
// balanced count allows; every partition is assigned once; counts differ by
// at most one.
func TestAssignSticky(t *testing.T) {
	member := func(id string, had ...int) kafka.GroupMember {
		b, _ := json.Marshal(had)
		return kafka.GroupMember{ID: id, Topics: []string{"t"}, UserData: b}
	}
	cases := []struct {
		name    string
		members []kafka.GroupMember
		n       int
		want    map[string][]int
	}{
		{"first member", []kafka.GroupMember{member("a")}, 6, map[string][]int{"a": {0, 1, 2, 3, 4, 5}}},
		{"one joins", []kafka.GroupMember{member("a", 0, 1, 2, 3, 4, 5), member("b")}, 6,
			map[string][]int{"a": {0, 1, 2}, "b": {3, 4, 5}}},
		{"one of three leaves: the two others keep theirs", []kafka.GroupMember{member("a", 0, 1), member("c", 4, 5)}, 6,
			map[string][]int{"a": {0, 1, 2}, "c": {3, 4, 5}}},
		{"uneven: one of three leaves", []kafka.GroupMember{member("b", 2, 3), member("c", 4, 5, 6)}, 7,
			map[string][]int{"b": {0, 1, 2, 3}, "c": {4, 5, 6}}},
		{"a fourth joins 6 partitions", []kafka.GroupMember{member("a", 0, 1), member("b", 2, 3), member("c", 4, 5), member("d")}, 6,
			map[string][]int{"a": {0, 1}, "b": {2, 3}, "c": {4}, "d": {5}}},
		{"claims twice, gone partitions, no user data", []kafka.GroupMember{member("a", 1, 9), member("b", 1, 2),
			{ID: "c", Topics: []string{"t"}}}, 3, map[string][]int{"a": {1}, "b": {2}, "c": {0}}},
		{"more members than partitions", []kafka.GroupMember{member("a", 0), member("b"), member("c", 1)}, 2,
			map[string][]int{"a": {0}, "b": nil, "c": {1}}},
	}
	for _, tc := range cases {
		var parts []kafka.Partition
		for i := range tc.n {
			parts = append(parts, kafka.Partition{Topic: "t", ID: i})
		}
		got := stickyBalancer{}.AssignGroups(tc.members, parts)
		seen := map[int]int{}
		for id, ts := range got {
			w := tc.want[id]
			if !slices.Equal(ts["t"], w) {
				t.Errorf("%s: %s got %v, want %v", tc.name, id, ts["t"], w)
			}
			for _, p := range ts["t"] {
				seen[p]++
			}
		}
		if len(seen) != tc.n || slices.ContainsFunc(slices.Collect(maps.Values(seen)), func(c int) bool { return c != 1 }) {
			t.Errorf("%s: partitions assigned %v", tc.name, seen)
		}
	}
}

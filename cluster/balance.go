package cluster

import (
	"cmp"
	"encoding/json"
	"slices"

	"github.com/segmentio/kafka-go"
)

// stickyBalancer is the check workers' group balancer (kafka-go's
// GroupBalancer): each partition stays with the member that owns it, when
// the counts allow, and the others (new ones, or those of a member gone)
// go to the members with the fewest, so that every member ends with n/m
// or n/m + 1. kafka-go's range and round-robin balancers assign from
// scratch, so that one member leaving moves most partitions between the
// members that stay, each move a rebuild and a hand-over of alerts.
// Members tell what they own in their join's user data.
type stickyBalancer struct {
	// owned returns this member's partitions (Consumer.Owned).
	owned func() []int
}

// ProtocolName names the protocol to the coordinator: members that all
// offer it use it; kafka-go's range balancer is the fallback.
func (stickyBalancer) ProtocolName() string { return "flowcheck-sticky" }

// UserData is this member's partitions, as JSON.
func (b stickyBalancer) UserData() ([]byte, error) { return json.Marshal(b.owned()) }

// AssignGroups assigns the partitions of each topic over the members that
// consume it.
func (stickyBalancer) AssignGroups(members []kafka.GroupMember, partitions []kafka.Partition) kafka.GroupMemberAssignments {
	out := kafka.GroupMemberAssignments{}
	byTopic := map[string][]int{}
	for _, p := range partitions {
		byTopic[p.Topic] = append(byTopic[p.Topic], p.ID)
	}
	for topic, ids := range byTopic {
		var ms []kafka.GroupMember
		for _, m := range members {
			if slices.Contains(m.Topics, topic) {
				ms = append(ms, m)
			}
		}
		for id, parts := range assignSticky(ms, ids) {
			if out[id] == nil {
				out[id] = map[string][]int{}
			}
			out[id][topic] = parts
		}
	}
	return out
}

// assignSticky spreads partitions over members, keeping what each member
// says it owns (its user data) as far as a balanced count allows.
func assignSticky(members []kafka.GroupMember, partitions []int) map[string][]int {
	out := make(map[string][]int, len(members))
	if len(members) == 0 {
		return out
	}
	slices.SortFunc(members, func(a, b kafka.GroupMember) int { return cmp.Compare(a.ID, b.ID) })
	exists := make(map[int]bool, len(partitions))
	for _, p := range partitions {
		exists[p] = true
	}
	// What each member had, each partition claimed once (first member by
	// id), partitions gone dropped.
	prev := make(map[string][]int, len(members))
	claimed := map[int]bool{}
	for _, m := range members {
		var had []int
		_ = json.Unmarshal(m.UserData, &had) // a member without user data had nothing
		slices.Sort(had)
		for _, p := range had {
			if exists[p] && !claimed[p] {
				claimed[p] = true
				prev[m.ID] = append(prev[m.ID], p)
			}
		}
	}
	base, extra := len(partitions)/len(members), len(partitions)%len(members)
	// Members that had the most keep up to base+1 first, while such
	// places last; the rest keep up to base.
	order := slices.Clone(members)
	slices.SortStableFunc(order, func(a, b kafka.GroupMember) int { return cmp.Compare(len(prev[b.ID]), len(prev[a.ID])) })
	taken := map[int]bool{}
	for _, m := range order {
		limit := base
		if extra > 0 && len(prev[m.ID]) > base {
			limit, extra = base+1, extra-1
		}
		keep := prev[m.ID][:min(limit, len(prev[m.ID]))]
		out[m.ID] = slices.Clone(keep)
		for _, p := range keep {
			taken[p] = true
		}
	}
	// The rest, one at a time, to the member with the fewest (then the
	// lowest id), up to base, or base+1 while such places last.
	for _, p := range partitions {
		if taken[p] {
			continue
		}
		var to string
		for _, m := range members {
			n := len(out[m.ID])
			if n > base || (n == base && extra == 0) {
				continue
			}
			if to == "" || n < len(out[to]) {
				to = m.ID
			}
		}
		if len(out[to]) == base {
			extra--
		}
		out[to] = append(out[to], p)
	}
	for id := range out {
		slices.Sort(out[id])
	}
	return out
}

// Package prefetch asks the processor to bring a cache line in without
// waiting for it: a plain load stalls the instructions behind it once the
// reorder buffer fills, so a loop of loads keeps only a few misses in
// flight, where prefetches keep as many as the memory system takes.
package prefetch

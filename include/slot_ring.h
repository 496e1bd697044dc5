/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Concurrency slots of one counter, shared by the BPF programs (under the counter's spin lock)
 * and by rlshape (on a copy, to show what is held now).
 *
 * A request takes a slot at admission and gives it back when its response ends. Some slots are
 * never given back: the client vanished without a FIN or RST that reached us, the flow entry
 * was evicted, the upstream never answers. So slots are counted by the epoch they were taken
 * in, in a ring of RLS_SLOT_EPOCHS counts, and a whole epoch's slots expire at once when its
 * count falls off the ring. Expiry is lazy: whoever takes the lock next moves the ring to the
 * present. No timer and no daemon are needed, and a slot is freed between max_hold and
 * max_hold * 8/7 after it was taken.
 *
 * Slot of epoch a is live while the ring's newest epoch is at most a + RLS_SLOT_EPOCHS - 1.
 */
#ifndef RLS_SLOT_RING_H
#define RLS_SLOT_RING_H

#include "rlshape.h"

#define RLS_SLOT_INLINE static inline __attribute__((always_inline))
#define RLS_SLOT_MASK (RLS_SLOT_EPOCHS - 1)

_Static_assert((RLS_SLOT_EPOCHS & RLS_SLOT_MASK) == 0, "the slot ring must be a power of two");

RLS_SLOT_INLINE __u64 rls_slot_epoch_ns(__u64 max_hold_ns)
{
	__u64 epoch_ns = max_hold_ns / (RLS_SLOT_EPOCHS - 1);

	return epoch_ns ? epoch_ns : 1;
}

/* Move the ring to now: epochs that fall off it take their slots with them, as expired. */
RLS_SLOT_INLINE void rls_slots_expire(struct rls_counter *c, __u64 now_ns)
{
	__u64 now_epoch;
	__u32 i, *count;

	if (!c->slot_epoch_ns)
		return;
	now_epoch = now_ns / c->slot_epoch_ns;
	for (i = 0; i < RLS_SLOT_EPOCHS; i++) {
		/* Caught up, or the clock stepped back: the ring stays where it is. */
		if (c->slot_epoch >= now_epoch)
			break;
		c->slot_epoch++;
		count = &c->slot_count[c->slot_epoch & RLS_SLOT_MASK];
		c->slots_held -= *count;
		c->slots_expired += *count;
		*count = 0;
	}
	if (c->slot_epoch < now_epoch) /* every epoch fell off: the ring is empty */
		c->slot_epoch = now_epoch;
}

/*
 * A reload changed max_hold, and with it the epoch length: the slots held start over in the
 * present epoch. They get a fresh hold time, never a shorter one.
 */
RLS_SLOT_INLINE void rls_slots_rebase(struct rls_counter *c, __u64 epoch_ns, __u64 now_ns)
{
	__u32 i;

	rls_slots_expire(c, now_ns);
	for (i = 0; i < RLS_SLOT_EPOCHS; i++)
		c->slot_count[i] = 0;
	c->slot_epoch_ns = epoch_ns;
	c->slot_epoch = now_ns / epoch_ns;
	c->slot_count[c->slot_epoch & RLS_SLOT_MASK] = c->slots_held;
}

/* Whether all of limit's slots are held now (after expiring what is due). */
RLS_SLOT_INLINE int rls_slots_full(struct rls_counter *c, __u32 limit, __u64 max_hold_ns,
				   __u64 now_ns)
{
	__u64 epoch_ns = rls_slot_epoch_ns(max_hold_ns);

	if (c->slot_epoch_ns != epoch_ns)
		rls_slots_rebase(c, epoch_ns, now_ns);
	else
		rls_slots_expire(c, now_ns);
	return c->slots_held >= limit;
}

/* Take a slot once rls_slots_full() said there is one; returns its epoch. */
RLS_SLOT_INLINE __u64 rls_slots_take(struct rls_counter *c)
{
	c->slot_count[c->slot_epoch & RLS_SLOT_MASK]++;
	c->slots_held++;
	if (c->slots_held > c->slots_peak)
		c->slots_peak = c->slots_held;
	return c->slot_epoch;
}

/*
 * Give back a slot taken in epoch under epoch length epoch_ns. A slot whose epoch fell off the
 * ring was freed already, and counted as expired. A slot taken under another epoch length was
 * moved by a rebase (or its counter was made anew): it is taken from the oldest epoch that
 * holds any, which is where a rebase put it.
 */
RLS_SLOT_INLINE void rls_slots_give_back(struct rls_counter *c, __u64 epoch, __u64 epoch_ns,
					 __u64 now_ns)
{
	__u32 i, *count;

	rls_slots_expire(c, now_ns);
	if (!c->slots_held)
		return;
	if (epoch_ns == c->slot_epoch_ns) {
		if (epoch + RLS_SLOT_EPOCHS <= c->slot_epoch)
			return;
		count = &c->slot_count[epoch & RLS_SLOT_MASK];
		if (*count) {
			(*count)--;
			c->slots_held--;
			return;
		}
	}
	for (i = 1; i <= RLS_SLOT_EPOCHS; i++) {
		count = &c->slot_count[(c->slot_epoch + i) & RLS_SLOT_MASK];
		if (*count) {
			(*count)--;
			c->slots_held--;
			return;
		}
	}
}

#endif /* RLS_SLOT_RING_H */

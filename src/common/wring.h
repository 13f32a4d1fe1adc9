/*
 * wring: a ring of fixed-size buffers that one producer thread fills and hands to one
 * consumer thread, which runs a callback on each in order (the dump's page writer,
 * dump-mem.c; the page server's file writer, server-store.c).
 *
 * Invariants:
 *  - Slots [tail, head) belong to the consumer, the others to the producer; a slot's
 *    metadata is the caller's (arrays indexed by slot number), written before
 *    wring_put and read by the callback.
 *  - The callback runs on the consumer thread, one slot at a time, in queue order.
 *  - The first error it returns is sticky: later slots are dropped without the
 *    callback, and wring_get/put/drain/stop return it.
 *  - The consumer thread runs with every signal blocked.
 */
#ifndef FERRY_WRING_H
#define FERRY_WRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct wring;

/* Consume slot `slot` (its buffer buf): 0 or -errno. */
typedef int (*wring_fn)(void *arg, unsigned slot, uint8_t *buf);

/* n slots of size bytes, the consumer thread started. 0 and *out, or -errno (not
 * logged). */
int wring_start(unsigned n, size_t size, wring_fn fn, void *arg, struct wring **out);
/* Wait for a free slot: its number and buffer. The sticky error or 0 (the slot is
 * given either way). */
int wring_get(struct wring *q, unsigned *slot, uint8_t **buf);
/* Hand the slot wring_get gave over to the consumer. The sticky error or 0. */
int wring_put(struct wring *q);
/* No free slot right now. */
bool wring_full(struct wring *q);
/* The sticky error or 0, now. */
int wring_error(struct wring *q);
/* Wait until every slot handed over is consumed. The sticky error or 0. */
int wring_drain(struct wring *q);
/* Time the consumer spent in the callback, ns. */
uint64_t wring_busy_ns(struct wring *q);
/* Drain, stop the thread, free (NULL is fine: 0). The sticky error or 0. */
int wring_stop(struct wring *q);

#endif

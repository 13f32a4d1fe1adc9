/*
 * rst-place: file ranges read into memory by helper threads (docs/warm.md "Staging in
 * parallel"). A caller plans jobs (file offset, destination, length), starts the
 * helpers, does its own share meanwhile, then joins them.
 *
 * Invariants: the helpers only pread() the file (its position is untouched: the caller
 * may keep reading it as a stream); each destination byte is written by one job; the
 * first error stops the others and is the result of rst_place_join; after the join no
 * helper runs (the caller may fork).
 */
#ifndef FERRY_ENGINE_RST_PLACE_H
#define FERRY_ENGINE_RST_PLACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rst_place;

/* Helper threads to use for a read of this size: FERRY_WARM_THREADS (1 = none) or the
 * online CPUs up to 4; 1 below 64 MiB (not worth a thread). */
int rst_place_threads(uint64_t bytes);

/* A new plan reading from fd (kept open by the caller until rst_place_join). */
int rst_place_new(int fd, struct rst_place **out);
/* Queue [off, off+len) of the file into dst (split into jobs of at most 16 MiB). */
int rst_place_add(struct rst_place *pl, uint64_t off, void *dst, uint64_t len);
/* Start n helper threads on the queued jobs; returns how many started (0: none, the
 * caller must do the jobs itself: rst_place_join then runs them on its thread). */
int rst_place_start(struct rst_place *pl, int n);
/* Wait for the helpers (running what is left on this thread when none started);
 * 0 or the first error (-errno, -EBADMSG for a short file; logged once). cancel: the
 * caller failed, the jobs not started are dropped (returns -ECANCELED, not logged).
 * Frees pl. */
int rst_place_join(struct rst_place *pl, const char *what, bool cancel);

#endif

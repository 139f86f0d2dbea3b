#ifndef DRV_CLOCK_H
#define DRV_CLOCK_H

#include <stdint.h>

/* Local monotonic milliseconds: for timeouts and pacing inside one process only. Lease
 * deadlines and backoff come from Redis TIME (docs/ARCHITECTURE.md, invariant 5). */
int64_t drv_now_ms(void);
/* Wall-clock milliseconds since the epoch, for display only. */
int64_t drv_wall_ms(void);
void drv_sleep_ms(int64_t ms);
/* A random number in [0, n) from a per-process seeded generator (not for security). */
uint64_t drv_rand(uint64_t n);

#endif

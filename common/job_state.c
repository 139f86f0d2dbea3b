#include "job_state.h"

#include <string.h>

static const char *const names[] = {
    [DRV_JOB_UNKNOWN] = "unknown", [DRV_JOB_CREATING] = "creating",   [DRV_JOB_RUNNING] = "running",
    [DRV_JOB_PAUSED] = "paused",   [DRV_JOB_CANCELLED] = "cancelled", [DRV_JOB_DONE] = "done",
    [DRV_JOB_MISSING] = "missing",
};

const char *drv_job_state_name(drv_job_state s) {
    return (unsigned)s < sizeof names / sizeof *names ? names[s] : names[DRV_JOB_UNKNOWN];
}

drv_job_state drv_job_state_parse(const char *name) {
    for (size_t i = 1; name && i < sizeof names / sizeof *names; i++)
        if (strcmp(names[i], name) == 0) return (drv_job_state)i;
    return DRV_JOB_UNKNOWN;
}

int drv_job_state_finished(drv_job_state s) {
    return s == DRV_JOB_DONE || s == DRV_JOB_CANCELLED;
}

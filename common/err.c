#include "err.h"

const char *drv_strerror(drv_err e) {
    switch (e) {
    case DRV_OK:
        return "ok";
    case DRV_ENOMEM:
        return "out of memory";
    case DRV_EINVAL:
        return "invalid argument";
    case DRV_EIO:
        return "I/O error";
    case DRV_EREPLY:
        return "Redis returned an error";
    case DRV_ENOJOB:
        return "no such job";
    case DRV_EEXIST:
        return "job already exists";
    case DRV_EPAUSED:
        return "job is paused";
    case DRV_ECANCELLED:
        return "job is cancelled";
    case DRV_ECURSOR:
        return "partition cursor moved";
    case DRV_ETOOBIG:
        return "too big";
    case DRV_ELOCKED:
        return "job is locked by another coordinator";
    case DRV_EFULL:
        return "Redis refuses writes for now";
    case DRV_ECORRUPT:
        return "state in Redis is corrupt";
    }
    return "unknown error";
}

/* The error record of a drv_outcome (worker.h), shared by every handler. */
#include "worker.h"

#include <cjson/cJSON.h>
#include <stdio.h>

void drv_outcome_error(drv_outcome *out, const char *msg, const char *detail) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    if (detail) cJSON_AddStringToObject(o, "detail", detail);
    char *t = cJSON_PrintUnformatted(o);
    snprintf(out->error, sizeof out->error, "%s", t ? t : "{\"error\":\"out of memory\"}");
    cJSON_free(t);
    cJSON_Delete(o);
}

#!/bin/sh
# --stdin-batch handler for bench/handlers.sh: one psql (one connection) per batch, one UPDATE
# per id line, in one transaction; "ok" per item when it commits.
ids=$(cat)
printf '%s\n' "$ids" | awk 'BEGIN { print "BEGIN;" }
    { printf "UPDATE items SET done = true, updates = updates + 1 WHERE id = %d;\n", $1 }
    END { print "COMMIT;" }' | "$PGBIN/psql" -qX -v ON_ERROR_STOP=1 >/dev/null || exit 1
printf '%s\n' "$ids" | sed 's/.*/ok/'

#!/usr/bin/env bash
# Back up or restore MindSettler's PostgreSQL database with pg_dump / pg_restore.
#   scripts/backup.sh dump    FILE   # custom-format dump of $DATABASE_URL
#   scripts/backup.sh restore FILE   # restore FILE into $DATABASE_URL (an empty database)
# The dump holds personal data: store it encrypted and delete it on the same schedule as
# the retention policy (see docs/deployment.md).
set -euo pipefail
cmd="${1:?usage: $0 dump|restore FILE}"
file="${2:?usage: $0 dump|restore FILE}"
: "${DATABASE_URL:?set DATABASE_URL to the PostgreSQL database}"
case "$DATABASE_URL" in postgres://*|postgresql://*) ;; *) echo "error: DATABASE_URL is not PostgreSQL" >&2; exit 2;; esac

case "$cmd" in
dump)
    # Readable by its owner only, whatever the caller's umask (and if FILE already existed).
    umask 077
    pg_dump --format=custom --no-owner --no-privileges --file="$file" "$DATABASE_URL"
    chmod 600 "$file"
    echo "dumped to $file ($(du -h "$file" | cut -f1))"
    ;;
restore)
    pg_restore --no-owner --no-privileges --exit-on-error --single-transaction --dbname="$DATABASE_URL" "$file"
    echo "restored $file"
    ;;
*) echo "usage: $0 dump|restore FILE" >&2; exit 2;;
esac

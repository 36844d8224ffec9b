#!/usr/bin/env bash
# Back up or restore MindSettler's PostgreSQL database with pg_dump / pg_restore.
#   scripts/backup.sh dump    FILE   # custom-format dump of $DATABASE_URL
#   scripts/backup.sh restore FILE   # restore FILE into $DATABASE_URL (an empty database)
# Run it as the service user with the environment file read (docs/deployment.md, section 6).
# The dump holds personal data: store it encrypted and delete it on the same schedule as
# the retention policy (see docs/deployment.md).
# pg_dump and pg_restore (postgresql-client) must be of the server's major version or newer.
set -euo pipefail
cmd="${1:?usage: $0 dump|restore FILE}"
file="${2:?usage: $0 dump|restore FILE}"
: "${DATABASE_URL:?set DATABASE_URL to the PostgreSQL database}"
case "$DATABASE_URL" in postgres://*|postgresql://*) ;; *) echo "error: DATABASE_URL is not PostgreSQL" >&2; exit 2;; esac

# The password goes to libpq in PGPASSWORD (the environment, which only this user and root
# can read), never on a command line, where `ps` shows it to every user of the machine.
# scheme://[user[:password]@]host[:port][/database][?options], as Django reads it.
scheme="${DATABASE_URL%%://*}"
rest="${DATABASE_URL#*://}"
netloc="${rest%%[/?#]*}"
path="${rest:${#netloc}}"
url="$DATABASE_URL"
if [[ "$netloc" == *@* ]]; then
    userinfo="${netloc%@*}"
    if [[ "$userinfo" == *:* ]]; then
        password="${userinfo#*:}"
        # Percent-decoded, as libpq would: %40 is "@". Backslashes first, kept as they are.
        password="${password//\\/\\\\}"
        printf -v PGPASSWORD '%b' "${password//%/\\x}"
        export PGPASSWORD
        url="$scheme://${userinfo%%:*}@${netloc##*@}$path"
    fi
fi

case "$cmd" in
dump)
    # Readable by its owner only, whatever the caller's umask (and if FILE already existed).
    umask 077
    pg_dump --format=custom --no-owner --no-privileges --file="$file" --dbname="$url"
    chmod 600 "$file"
    echo "dumped to $file ($(du -h "$file" | cut -f1))"
    ;;
restore)
    pg_restore --no-owner --no-privileges --exit-on-error --single-transaction --dbname="$url" "$file"
    echo "restored $file"
    ;;
*) echo "usage: $0 dump|restore FILE" >&2; exit 2;;
esac

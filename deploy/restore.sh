#!/usr/bin/env bash
# Restore a Parley homeserver backup made by backup.sh into an empty database, drop
# the one-time KeyPackages it holds, and put the key files back. See --help and
# deploy/README.md ("Backups").
set -euo pipefail

readonly FORMAT="parley-backup-1"
# Added to every device's next inbox position (2^40): more than the entries one device
# could have received between a backup and its restore, far below 2^53 (JSON numbers).
readonly INBOX_POSITION_SKIP=1099511627776

usage() {
    cat <<'EOF'
Usage: restore.sh [OPTIONS] BACKUP

Restores BACKUP (a directory or .tar made by backup.sh) for a Parley homeserver:
  1. checks the backup against its SHA256SUMS;
  2. restores the database dump into an EMPTY database (pg_restore --no-owner
     --no-privileges --exit-on-error --single-transaction); a database that holds
     any table is refused;
  3. deletes every unclaimed one-time MLS KeyPackage from it: any of them may have
     been handed out after the backup was taken, and handing one out twice breaks
     MLS. Devices upload new ones when they next connect. Last-resort KeyPackages
     (one per device, reusable by design) are kept, so every device stays reachable
     meanwhile. And every device's next inbox position moves up by 2^40, so that new
     entries come after any position a device read after the backup (its cursor);
  4. puts the key files back, mode 0600, where you say (only those you name).
Start the homeserver only after this has succeeded.

Options:
  -d, --database-url URL  the database to restore into; default: $PARLEY_DATABASE__URL,
                          else $DATABASE_URL. It must be empty. The homeserver must
                          connect as the user restoring (objects are owned by it).
      --create            create that database first (connecting to the "postgres"
                          database of the same server); it must not exist yet
  -k, --signing-key FILE  write the backup's federation signing key to FILE
      --second-factor-key FILE
                          write the backup's second-factor key (TOTP secrets) to FILE
      --transparency-vrf-key FILE
                          write the backup's key directory VRF key to FILE
      --tls-cert FILE     write the backup's client API certificate chain to FILE
      --tls-key FILE      write the backup's client API private key to FILE
      --admin-token FILE  write the backup's admin API token file to FILE
  -c, --config FILE       write the backup's homeserver configuration to FILE
      --owner USER[:GROUP]  owner of the files written (when run as root)
      --force             replace existing files that differ from the backup's
                          (without it, such a file stops the restore before the
                          database is touched)
  -h, --help              this text

Environment:
  PG_BINDIR               directory holding pg_restore and psql (default: from PATH)

Keep a signing key file that still exists unless it is lost or compromised: it may
hold a newer key (after `parley-homeserver keys rotate`) that other servers know.
EOF
}

die() {
    echo "restore.sh: $*" >&2
    exit 1
}
say() {
    echo "restore.sh: $*"
}

database_url="${PARLEY_DATABASE__URL:-${DATABASE_URL:-}}"
create=false
force=false
owner=""
backup=""
declare -A destination=()

need_value() {
    [[ $# -ge 2 && -n ${2:-} ]] || die "$1 needs a value (see --help)"
}

while [ "$#" -gt 0 ]; do
    case "$1" in
    -d | --database-url) need_value "$@"; database_url="$2"; shift 2 ;;
    --create) create=true; shift ;;
    -k | --signing-key) need_value "$@"; destination[signing.key]="$2"; shift 2 ;;
    --second-factor-key) need_value "$@"; destination[second-factor.key]="$2"; shift 2 ;;
    --transparency-vrf-key) need_value "$@"; destination[transparency-vrf.key]="$2"; shift 2 ;;
    --tls-cert) need_value "$@"; destination[tls.crt]="$2"; shift 2 ;;
    --tls-key) need_value "$@"; destination[tls.key]="$2"; shift 2 ;;
    --admin-token) need_value "$@"; destination[admin.token]="$2"; shift 2 ;;
    -c | --config) need_value "$@"; destination[homeserver.toml]="$2"; shift 2 ;;
    --owner) need_value "$@"; owner="$2"; shift 2 ;;
    --force) force=true; shift ;;
    -h | --help) usage; exit 0 ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *)
        [ -z "$backup" ] || die "one BACKUP only (see --help)"
        backup="$1"
        shift
        ;;
    esac
done

[ -n "$backup" ] || die "which backup? (see --help)"
[ -n "$database_url" ] || die "no database: give --database-url or set PARLEY_DATABASE__URL"
bin() {
    if [ -n "${PG_BINDIR:-}" ]; then echo "$PG_BINDIR/$1"; else echo "$1"; fi
}
PG_RESTORE=$(bin pg_restore)
PSQL=$(bin psql)
for tool in "$PG_RESTORE" "$PSQL"; do
    command -v "$tool" >/dev/null || die "$tool not found (install the PostgreSQL client or set PG_BINDIR)"
done
command -v sha256sum >/dev/null || die "sha256sum not found (coreutils)"

umask 077
scratch=$(mktemp -d)
trap 'rm -rf -- "$scratch"' EXIT

# 1. The backup, checked.
if [ -f "$backup" ]; then
    tar -C "$scratch" -xf "$backup" || die "$backup is not a tar archive"
    dirs=("$scratch"/parley-backup-*)
    [[ ${#dirs[@]} -eq 1 && -d ${dirs[0]} ]] || die "$backup does not hold one parley-backup-* directory"
    dir="${dirs[0]}"
elif [ -d "$backup" ]; then
    dir="$backup"
else
    die "no backup at $backup"
fi
[[ -f $dir/MANIFEST && -f $dir/SHA256SUMS ]] || die "$backup has no MANIFEST and SHA256SUMS: not made by backup.sh"
manifest() { sed -n "s/^$1=//p" "$dir/MANIFEST" | head -n 1; }
[ "$(manifest format)" = "$FORMAT" ] || die "$backup is in format '$(manifest format)', not $FORMAT"
(cd "$dir" && sha256sum --check --quiet --strict SHA256SUMS) || die "$backup is damaged: its checksums do not match"
[ -f "$dir/database.dump" ] || die "$backup has no database.dump"
say "backup $backup of $(manifest created_at) (schema version $(manifest schema_version)) is intact"

# 2. The files to write: refuse early, before the database is touched.
for file in "${!destination[@]}"; do
    target="${destination[$file]}"
    [ -f "$dir/$file" ] || die "$backup has no $file (it was backed up without it)"
    if [ -e "$target" ] && ! cmp -s -- "$dir/$file" "$target" && ! $force; then
        die "$target exists and differs from the backup's $file; keep it, or give --force to replace it"
    fi
    [ -d "$(dirname -- "$target")" ] || die "directory $(dirname -- "$target") does not exist"
done

# 3. The database.
shown_url=$(printf '%s' "$database_url" | sed -E 's#^([a-z]+://[^:/@]*):[^@]*@#\1:***@#')
psql_at() { # psql_at URL [psql args...]: quiet, unaligned, stop on the first error
    local url="$1"
    shift
    "$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 --no-password -d "$url" "$@"
}
if $create; then
    [[ "$database_url" =~ ^(postgres(ql)?://[^/?#]*)/([^/?#]+)(\?.*)?$ ]] ||
        die "--create needs a postgres://…/DATABASE URL"
    name="${BASH_REMATCH[3]}"
    maintenance="${BASH_REMATCH[1]}/postgres${BASH_REMATCH[4]}"
    printf 'CREATE DATABASE :"name";\n' | psql_at "$maintenance" -v name="$name" ||
        die "cannot create database $name"
    say "created database $name"
fi
tables=$(psql_at "$database_url" -c "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S')
       AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
       AND n.nspname NOT LIKE 'pg_temp%'") || die "cannot connect to $shown_url"
[ "$tables" = "0" ] || die "$shown_url is not empty ($tables tables, views or sequences): restore into a new database"

say "pg_restore into $shown_url"
"$PG_RESTORE" --no-owner --no-privileges --exit-on-error --single-transaction --no-password \
    --dbname="$database_url" "$dir/database.dump" || die "pg_restore failed; nothing was restored"

# 4. What must not be handed out twice (see deploy/README.md, Restoring), in one
#    transaction: one-time KeyPackages, and inbox positions (devices hold cursors up to
#    the positions they read after the backup; new entries must come above them).
counts=$(psql_at "$database_url" <<SQL
BEGIN;
WITH dropped AS (DELETE FROM key_packages WHERE NOT last_resort RETURNING 1)
SELECT (SELECT count(*) FROM dropped) || ' ' || (SELECT count(*) FROM key_packages WHERE last_resort);
UPDATE devices SET inbox_position = inbox_position + $INBOX_POSITION_SKIP;
COMMIT;
SQL
) || die "the database was restored, but preparing it failed: do NOT start a homeserver on it; drop it and restore again"
read -r dropped kept <<<"$counts"
say "deleted $dropped unclaimed one-time KeyPackages (they may have been handed out after the backup); kept $kept last-resort KeyPackages"
say "moved every device's next inbox position up by $INBOX_POSITION_SKIP, above any position handed out after the backup"

summary=$(psql_at "$database_url" -F ' ' -c "SELECT (SELECT max(version) FROM schema_migrations),
    (SELECT count(*) FROM accounts), (SELECT count(*) FROM devices),
    (SELECT count(*) FROM groups), (SELECT count(*) FROM inbox)")
read -r version accounts devices groups inbox <<<"$summary"
say "database restored: schema version $version, $accounts accounts, $devices devices, $groups groups, $inbox unacknowledged inbox entries"

# 5. The key files.
for file in "${!destination[@]}"; do
    target="${destination[$file]}"
    if [ -e "$target" ] && cmp -s -- "$dir/$file" "$target"; then
        chmod 0600 -- "$target"
        if [ -n "$owner" ]; then
            chown -- "$owner" "$target"
        fi
        say "$target already equals the backup's $file (left as it was, mode 0600)"
        continue
    fi
    tmp="$target.restore-$$"
    install -m 0600 -- "$dir/$file" "$tmp"
    if [ -n "$owner" ]; then
        chown -- "$owner" "$tmp"
    fi
    mv -f -- "$tmp" "$target"
    say "wrote $target from the backup's $file (mode 0600)"
done

say "done. Start the homeserver on $shown_url. Messages, accounts and devices newer than the backup are gone;"
say "devices upload new KeyPackages when they next connect (see deploy/README.md)."

#!/usr/bin/env bash
# Back up a Parley homeserver: its PostgreSQL database (pg_dump, custom format) and
# its key files, into one new directory readable by its owner only. See --help and
# deploy/README.md ("Backups").
set -euo pipefail

readonly FORMAT="parley-backup-1"

usage() {
    cat <<'EOF'
Usage: backup.sh [OPTIONS]

Backs up a Parley homeserver: its PostgreSQL database (pg_dump -Fc) and its key
files, into a new directory OUTPUT/parley-backup-<UTC time>/ (mode 0700, files 0600)
with a MANIFEST and SHA256SUMS. Prints the backup's path as the last line on stdout.
Safe while the homeserver runs: pg_dump reads one consistent snapshot.

Options:
  -d, --database-url URL  the homeserver's database ([database] url); default:
                          $PARLEY_DATABASE__URL, else $DATABASE_URL. Prefer a URL
                          without a password and ~/.pgpass or $PGPASSWORD: the URL
                          is passed to pg_dump and psql on their command lines.
  -o, --output DIR        where to create the backup (default: the current directory)
  -k, --signing-key FILE  the federation signing key ([federation] signing_key)
      --second-factor-key FILE
                          the key sealing TOTP secrets ([second_factor] key_file,
                          default second-factor.key beside the signing key); without
                          it the database's second factors cannot be used
      --transparency-vrf-key FILE
                          the key directory's VRF key ([transparency] vrf_key_file,
                          default transparency-vrf.key beside the signing key);
                          without it the database's key directory cannot be continued
      --tls-cert FILE     the client API certificate chain ([tls] cert)
      --tls-key FILE      the client API private key ([tls] key)
      --admin-token FILE  the admin API token file ([admin] token_file)
  -c, --config FILE       the homeserver's configuration file, copied as is
      --tar               pack the backup into parley-backup-<time>.tar (mode 0600)
                          instead of leaving a directory
  -h, --help              this text

Environment:
  PG_BINDIR               directory holding pg_dump and psql (default: from PATH);
                          pg_dump must be at least as new as the server

Restore with deploy/restore.sh. The key files are secrets: keep backups where only
the homeserver's operators can read them.
EOF
}

die() {
    echo "backup.sh: $*" >&2
    exit 1
}

database_url="${PARLEY_DATABASE__URL:-${DATABASE_URL:-}}"
output="."
signing_key=""
second_factor_key=""
transparency_vrf_key=""
tls_cert=""
tls_key=""
admin_token=""
config=""
tar=false

need_value() {
    [[ $# -ge 2 && -n ${2:-} ]] || die "$1 needs a value (see --help)"
}

while [ "$#" -gt 0 ]; do
    case "$1" in
    -d | --database-url) need_value "$@"; database_url="$2"; shift 2 ;;
    -o | --output) need_value "$@"; output="$2"; shift 2 ;;
    -k | --signing-key) need_value "$@"; signing_key="$2"; shift 2 ;;
    --second-factor-key) need_value "$@"; second_factor_key="$2"; shift 2 ;;
    --transparency-vrf-key) need_value "$@"; transparency_vrf_key="$2"; shift 2 ;;
    --tls-cert) need_value "$@"; tls_cert="$2"; shift 2 ;;
    --tls-key) need_value "$@"; tls_key="$2"; shift 2 ;;
    --admin-token) need_value "$@"; admin_token="$2"; shift 2 ;;
    -c | --config) need_value "$@"; config="$2"; shift 2 ;;
    --tar) tar=true; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
done

[ -n "$database_url" ] || die "no database: give --database-url or set PARLEY_DATABASE__URL"
bin() {
    if [ -n "${PG_BINDIR:-}" ]; then echo "$PG_BINDIR/$1"; else echo "$1"; fi
}
PG_DUMP=$(bin pg_dump)
PSQL=$(bin psql)
for tool in "$PG_DUMP" "$PSQL"; do
    command -v "$tool" >/dev/null || die "$tool not found (install the PostgreSQL client or set PG_BINDIR)"
done
command -v sha256sum >/dev/null || die "sha256sum not found (coreutils)"
for file in "$signing_key" "$second_factor_key" "$transparency_vrf_key" "$tls_cert" "$tls_key" "$admin_token" "$config"; do
    [ -z "$file" ] || [ -r "$file" ] || die "cannot read $file"
done
[ -d "$output" ] || die "output directory $output does not exist"

# Everything created from here on is the owner's only.
umask 077

stamp=$(date -u +%Y%m%dT%H%M%SZ)
name="parley-backup-$stamp"
n=1
while [ -e "$output/$name" ] || [ -e "$output/$name.partial" ] || [ -e "$output/$name.tar" ]; do
    n=$((n + 1))
    name="parley-backup-$stamp-$n"
done
final="$output/$name"
work="$final.partial"
mkdir -m 0700 "$work"
cleanup() {
    if [ -n "${work:-}" ] && [ -d "$work" ]; then
        rm -rf -- "$work"
    fi
}
trap cleanup EXIT

# The URL without its password, for the manifest and messages.
shown_url=$(printf '%s' "$database_url" | sed -E 's#^([a-z]+://[^:/@]*):[^@]*@#\1:***@#')

echo "backup.sh: reading the schema version of $shown_url" >&2
schema_version=$("$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 --no-password -d "$database_url" \
    -c "SELECT coalesce(max(version), 0) FROM schema_migrations") ||
    die "cannot read schema_migrations (is this a Parley database?)"

echo "backup.sh: pg_dump -Fc" >&2
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
"$PG_DUMP" --format=custom --no-password --file="$work/database.dump" --dbname="$database_url" ||
    die "pg_dump failed"

files=(database.dump)
copy() { # copy SOURCE NAME
    cp -- "$1" "$work/$2"
    chmod 0600 "$work/$2"
    files+=("$2")
    echo "backup.sh: copied $1 as $2" >&2
}
[ -z "$signing_key" ] || copy "$signing_key" signing.key
[ -z "$second_factor_key" ] || copy "$second_factor_key" second-factor.key
[ -z "$transparency_vrf_key" ] || copy "$transparency_vrf_key" transparency-vrf.key
[ -z "$tls_cert" ] || copy "$tls_cert" tls.crt
[ -z "$tls_key" ] || copy "$tls_key" tls.key
[ -z "$admin_token" ] || copy "$admin_token" admin.token
[ -z "$config" ] || copy "$config" homeserver.toml

{
    echo "format=$FORMAT"
    echo "created_at=$started"
    echo "host=$(hostname 2>/dev/null || echo unknown)"
    echo "database=$shown_url"
    echo "schema_version=$schema_version"
    echo "pg_dump=$("$PG_DUMP" --version)"
    [ -z "$signing_key" ] || echo "signing_key=$signing_key"
    [ -z "$second_factor_key" ] || echo "second_factor_key=$second_factor_key"
    [ -z "$transparency_vrf_key" ] || echo "transparency_vrf_key=$transparency_vrf_key"
    [ -z "$tls_cert" ] || echo "tls_cert=$tls_cert"
    [ -z "$tls_key" ] || echo "tls_key=$tls_key"
    [ -z "$admin_token" ] || echo "admin_token=$admin_token"
    [ -z "$config" ] || echo "config=$config"
    echo "files=${files[*]}"
} >"$work/MANIFEST"
(cd "$work" && sha256sum -- MANIFEST "${files[@]}" >SHA256SUMS)
chmod 0600 "$work"/*
sync -- "$work"/* 2>/dev/null || sync

mv -- "$work" "$final"
work=""
if $tar; then
    tar -C "$output" -cf "$final.tar" "$name"
    chmod 0600 "$final.tar"
    rm -rf -- "$final"
    final="$final.tar"
fi

echo "backup.sh: done: schema version $schema_version, ${files[*]}" >&2
echo "$final"

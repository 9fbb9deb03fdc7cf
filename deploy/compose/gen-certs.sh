#!/bin/sh
# A private CA and a certificate for each homeserver of deploy/compose.yaml, for both
# the client API and federation (serverAuth and clientAuth, the server name as SAN).
#
#   gen-certs.sh CA_DIR OUT_DIR:SERVER_NAME [OUT_DIR:SERVER_NAME ...]
#
# CA_DIR keeps the CA's key (no homeserver sees it). Each OUT_DIR gets ca.pem, cert.pem
# and key.pem, owned by $CERT_UID:$CERT_GID (default 10001, the image's parley user),
# the key readable by that user only. Idempotent: what exists and is still valid for
# at least 30 days is kept; a missing or expiring certificate is issued anew.
# POSIX sh and openssl; in compose it runs in an Alpine image.
set -eu

umask 077
uid="${CERT_UID:-10001}"
gid="${CERT_GID:-10001}"
days_ca=3650
days_leaf=825
renew_within=$((30 * 24 * 3600))

if ! command -v openssl >/dev/null 2>&1; then
    if command -v apk >/dev/null 2>&1; then
        apk add --no-cache --quiet openssl
    else
        echo "gen-certs.sh: openssl is required" >&2
        exit 1
    fi
fi

[ "$#" -ge 2 ] || {
    echo "usage: gen-certs.sh CA_DIR OUT_DIR:SERVER_NAME [OUT_DIR:SERVER_NAME ...]" >&2
    exit 2
}
ca_dir="$1"
shift
mkdir -p "$ca_dir"

still_valid() { # still_valid CERT [CA]: exists, not expiring soon, chains to CA
    [ -s "$1" ] || return 1
    openssl x509 -in "$1" -noout -checkend "$renew_within" >/dev/null 2>&1 || return 1
    [ -z "${2:-}" ] || openssl verify -CAfile "$2" "$1" >/dev/null 2>&1
}

if still_valid "$ca_dir/ca.pem" && [ -s "$ca_dir/ca.key" ]; then
    echo "gen-certs.sh: keeping the CA in $ca_dir"
else
    echo "gen-certs.sh: creating a CA in $ca_dir"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$ca_dir/ca.key"
    cat >"$ca_dir/ca.cnf" <<'EOF'
[req]
distinguished_name = dn
x509_extensions = ca
prompt = no
[dn]
CN = Parley compose CA
[ca]
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
    openssl req -new -x509 -config "$ca_dir/ca.cnf" -key "$ca_dir/ca.key" -sha256 \
        -days "$days_ca" -out "$ca_dir/ca.pem"
fi
chmod 0600 "$ca_dir/ca.key"
chmod 0644 "$ca_dir/ca.pem"

for target in "$@"; do
    out="${target%%:*}"
    name="${target#*:}"
    case "$target" in
    ?*:?*) ;;
    *)
        echo "gen-certs.sh: '$target' is not OUT_DIR:SERVER_NAME" >&2
        exit 2
        ;;
    esac
    mkdir -p "$out"
    if still_valid "$out/cert.pem" "$ca_dir/ca.pem" && [ -s "$out/key.pem" ] &&
        openssl x509 -in "$out/cert.pem" -noout -ext subjectAltName 2>/dev/null | grep -Eq "DNS:$name(,|\$)"; then
        echo "gen-certs.sh: keeping the certificate of $name in $out"
    else
        echo "gen-certs.sh: issuing a certificate for $name in $out"
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$out/key.pem"
        openssl req -new -key "$out/key.pem" -subj "/CN=$name" -out "$out/cert.csr"
        cat >"$out/cert.ext" <<EOF
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = DNS:$name, DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
        openssl x509 -req -in "$out/cert.csr" -CA "$ca_dir/ca.pem" -CAkey "$ca_dir/ca.key" \
            -CAcreateserial -sha256 -days "$days_leaf" -extfile "$out/cert.ext" -out "$out/cert.pem"
        rm -f "$out/cert.csr" "$out/cert.ext"
    fi
    cp "$ca_dir/ca.pem" "$out/ca.pem"
    chown "$uid:$gid" "$out" "$out/ca.pem" "$out/cert.pem" "$out/key.pem"
    chmod 0755 "$out"
    chmod 0644 "$out/ca.pem" "$out/cert.pem"
    chmod 0600 "$out/key.pem"
done
echo "gen-certs.sh: done"

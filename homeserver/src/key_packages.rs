//! The MLS key package directory: what a device may upload, and claiming for others.
//!
//! Every package a device uploads carries the device's signature key from the device key
//! directory; the device's first upload binds it (see `devices::bind_signature_key`).

use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::{BasicCredential, Ciphersuite, KeyPackageIn, ProtocolVersion};
use openmls_rust_crypto::RustCrypto;
use parley_specs::groups_api::GroupMember;
use parley_specs::keys_api::{ClaimKeyPackagesResponse, ClaimedKeyPackage, KeyPackageCount};
use parley_specs::mls::{self, MAX_KEY_PACKAGES_PER_DEVICE, MAX_KEY_PACKAGES_PER_UPLOAD};
use parley_specs::{Base64Bytes, DeviceId, ErrorCode, UserId};
use time::OffsetDateTime;

use crate::devices;
use crate::error::ApiError;
use crate::remote;
use crate::state::AppState;
use crate::store;

/// A KeyPackage whose signatures, ciphersuite, lifetime and credential have been checked.
/// Only `validate` makes one, so the store never holds an unchecked package.
pub struct ValidKeyPackage {
    pub bytes: Vec<u8>,
    pub hash_ref: Vec<u8>,
    pub last_resort: bool,
    pub expires_at: OffsetDateTime,
    /// The leaf's signature public key.
    pub signature_key: Vec<u8>,
}

/// Checks one uploaded KeyPackage of `owner`. `index` names it in error messages.
pub fn validate(raw: &[u8], owner: &GroupMember, index: usize) -> Result<ValidKeyPackage, ApiError> {
    let invalid = |why: String| ApiError::new(ErrorCode::InvalidKeyPackage, format!("key package {index}: {why}"));
    let crypto = RustCrypto::default();
    let mut rest = raw;
    let parsed = KeyPackageIn::tls_deserialize(&mut rest).map_err(|e| invalid(format!("does not parse: {e}")))?;
    if !rest.is_empty() {
        return Err(invalid(format!("{} bytes after the end of the KeyPackage", rest.len())));
    }
    let package = parsed
        .validate(&crypto, ProtocolVersion::Mls10)
        .map_err(|e| invalid(format!("rejected: {e}")))?;
    if u16::from(package.ciphersuite()) != mls::CIPHERSUITE {
        return Err(invalid(format!(
            "ciphersuite {:?} is not the profile's {:?}",
            package.ciphersuite(),
            Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
        )));
    }
    let credential = BasicCredential::try_from(package.leaf_node().credential().clone())
        .map_err(|_| invalid("the credential is not a BasicCredential".into()))?;
    let expected = mls::credential_identity(&owner.user_id, &owner.device_id);
    if credential.identity() != expected.as_slice() {
        return Err(ApiError::new(
            ErrorCode::CredentialMismatch,
            format!(
                "key package {index}: its credential names {:?}, but it was uploaded by {}/{}",
                String::from_utf8_lossy(credential.identity()),
                owner.user_id,
                owner.device_id
            ),
        ));
    }
    let not_after = i64::try_from(package.life_time().not_after()).unwrap_or(i64::MAX);
    let expires_at = OffsetDateTime::from_unix_timestamp(not_after)
        .map_err(|_| invalid("its lifetime ends beyond the year 9999".into()))?;
    let hash_ref = package
        .hash_ref(&crypto)
        .map_err(|e| ApiError::internal("hashing a key package", e))?
        .as_slice()
        .to_vec();
    Ok(ValidKeyPackage {
        bytes: raw.to_vec(),
        hash_ref,
        last_resort: package.last_resort(),
        expires_at,
        signature_key: package.leaf_node().signature_key().as_slice().to_vec(),
    })
}

pub async fn upload(
    state: &AppState,
    who: &GroupMember,
    packages: Vec<Base64Bytes>,
) -> Result<KeyPackageCount, ApiError> {
    if packages.len() > MAX_KEY_PACKAGES_PER_UPLOAD {
        return Err(ApiError::new(
            ErrorCode::InvalidParam,
            format!("at most {MAX_KEY_PACKAGES_PER_UPLOAD} key packages per upload"),
        ));
    }
    // Signature checks are CPU work: off the request threads.
    let owner = who.clone();
    let valid = crate::cpu_pool::run(move || {
        packages
            .iter()
            .enumerate()
            .map(|(i, raw)| validate(raw.as_slice(), &owner, i))
            .collect::<Result<Vec<_>, _>>()
    })
    .await??;
    // One device, one key: a batch must agree with itself before it meets the directory.
    if let Some(first) = valid.first()
        && let Some(index) = valid.iter().position(|p| p.signature_key != first.signature_key)
    {
        return Err(ApiError::new(
            ErrorCode::SignatureKeyMismatch,
            format!("key package {index}: its signature key differs from key package 0's; a device has one key"),
        ));
    }

    let mut db = state.pool.get().await?;
    let tx = db.transaction().await?;
    // Serializes uploads of one device so the per-device cap holds under concurrency.
    store::key_packages::lock_device(&tx, &who.device_id).await?;
    if let Some(first) = valid.first() {
        devices::bind_signature_key(&tx, &who.device_id, &first.signature_key, "key package 0").await?;
    }
    let count = store::key_packages::count(&tx, &who.device_id).await?;
    let one_time = i64::try_from(valid.iter().filter(|p| !p.last_resort).count()).unwrap_or(i64::MAX);
    if count.available + one_time > MAX_KEY_PACKAGES_PER_DEVICE {
        return Err(ApiError::new(
            ErrorCode::InvalidParam,
            format!(
                "a device holds at most {MAX_KEY_PACKAGES_PER_DEVICE} unclaimed key packages ({} stored)",
                count.available
            ),
        ));
    }
    for package in &valid {
        let row = store::key_packages::NewKeyPackage {
            bytes: &package.bytes,
            hash_ref: &package.hash_ref,
            last_resort: package.last_resort,
            expires_at: package.expires_at,
        };
        store::key_packages::insert(&tx, &who.device_id, &row).await?;
    }
    let count = store::key_packages::count(&tx, &who.device_id).await?;
    tx.commit().await?;
    Ok(count)
}

pub async fn count(state: &AppState, device: &DeviceId) -> Result<KeyPackageCount, ApiError> {
    Ok(store::key_packages::count(&state.pool.get().await?, device).await?)
}

/// One key package per device of `user`, consumed atomically; a user of another server
/// is claimed from that server over federation.
pub async fn claim(state: &AppState, who: &GroupMember, user: UserId) -> Result<ClaimKeyPackagesResponse, ApiError> {
    state
        .claims_per_account
        .check(who.user_id.localpart().as_str())
        .map_err(ApiError::rate_limited)?;
    if user.server_name() == state.config.server_name {
        let claimer = Claimer {
            name: who.user_id.as_str(),
            except: Some(&who.device_id),
        };
        return claim_local(state, user, claimer).await;
    }
    match &state.remote {
        Some(remote) => remote::claims::claim(remote, &user).await,
        None => Err(ApiError::not_found(&format!(
            "user {user} (this server does not federate with other servers)"
        ))),
    }
}

/// Who claims: a user of this server (whose own device is skipped: it never needs its
/// own package), or another server claiming for its users.
pub struct Claimer<'a> {
    pub name: &'a str,
    pub except: Option<&'a DeviceId>,
}

/// One key package per device of `user`, a user of this server, consumed atomically in
/// one transaction. A device's one-time packages are rationed per hour, per claimer and
/// in all (see the limits `one_time_key_packages_per_*`): past either budget the claim
/// gets the device's last-resort package, so nobody can drain a device's supply and
/// leave later adds with nothing fresh, and adds keep working.
pub async fn claim_local(
    state: &AppState,
    user: UserId,
    claimer: Claimer<'_>,
) -> Result<ClaimKeyPackagesResponse, ApiError> {
    let limits = &state.config.limits;
    let per_claimer = i64::from(limits.one_time_key_packages_per_claimer_and_device_per_hour);
    let per_device = i64::from(limits.one_time_key_packages_per_device_per_hour);
    let localpart = user.localpart();
    let mut db = state.pool.get().await?;
    let tx = db.transaction().await?;
    if !store::accounts::exists(&tx, &localpart).await? {
        return Err(ApiError::not_found(&format!("user {user}")));
    }
    let mut key_packages = Vec::new();
    let mut devices_without_key_packages = Vec::new();
    for device in store::devices::list(&tx, &localpart).await? {
        let device_id = DeviceId::parse(&device.device_id).map_err(|e| ApiError::internal("stored device id", e))?;
        if Some(&device_id) == claimer.except {
            continue;
        }
        let (by_claimer, by_all) = store::key_packages::recent_claims(&tx, &device_id, claimer.name).await?;
        let within_budget = by_claimer < per_claimer && by_all < per_device;
        let claimed = store::key_packages::claim_one(&tx, &device_id, within_budget).await?;
        let kind = match &claimed {
            Some((_, false)) => "one_time",
            Some((_, true)) if within_budget => "last_resort",
            Some((_, true)) => "last_resort_over_budget",
            None => "none",
        };
        state.metrics.key_package_claims.with_label_values(&[kind]).inc();
        match claimed {
            Some((bytes, last_resort)) => {
                store::key_packages::record_claim(&tx, &device_id, claimer.name, !last_resort).await?;
                key_packages.push(ClaimedKeyPackage {
                    device_id,
                    key_package: bytes.into(),
                    last_resort,
                });
            }
            None => devices_without_key_packages.push(device_id),
        }
    }
    tx.commit().await?;
    Ok(ClaimKeyPackagesResponse {
        user_id: user,
        key_packages,
        devices_without_key_packages,
    })
}

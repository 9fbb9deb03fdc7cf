//! Safety numbers of this user and a contact, verification, and the warning when a
//! verified contact's devices change (see `safety.rs` for the number itself).

use std::collections::BTreeSet;

use parley_specs::UserId;
use parley_specs::mls::credential_identity;
use time::OffsetDateTime;

use super::directory::TreeLeaf;
use super::error::MessengerError;
use super::events::Event;
use super::groups::member_of;
use super::safety::{Contact, DeviceKey, SafetyNumber, Verification, difference, safety_digits};
use super::{Messenger, Result};

impl Messenger {
    /// The safety number of this user and `contact`, from both users' devices in the
    /// groups this device shares with the contact; and whether the contact is verified.
    /// Both people see the same number when their devices are up to date (sync first).
    ///
    /// The number covers exactly the keys the device key directory vouches for: a key a
    /// shared group's tree carries that the owner's homeserver does not list for that
    /// device is left out (such a leaf is refused when it arrives; this covers groups
    /// joined before clients checked).
    pub async fn safety_number(&mut self, contact: &UserId) -> Result<SafetyNumber> {
        let lock = self.begin().await?;
        let result = match self.vouched_shared_keys(contact).await {
            Ok(keys) => self.safety_number_of(contact, keys),
            Err(e) => Err(e),
        };
        self.end(lock, result)
    }

    /// Marks `contact` verified with the devices the safety number covers now (after the
    /// two people compared it). A later change of those devices raises
    /// [`Event::VerifiedContactChanged`].
    pub async fn mark_verified(&mut self, contact: &UserId) -> Result<SafetyNumber> {
        let lock = self.begin().await?;
        let number = match self.vouched_shared_keys(contact).await {
            Ok(keys) => self.safety_number_of(contact, keys),
            Err(e) => Err(e),
        };
        let result = match number {
            Ok(number) => {
                let verified_at = OffsetDateTime::now_utc();
                self.state.contacts.insert(
                    contact.clone(),
                    Contact {
                        verified_keys: number.contact_devices.iter().cloned().collect(),
                        verified_at,
                        changed: false,
                    },
                );
                let verified = SafetyNumber {
                    verification: Verification::Verified { verified_at },
                    ..number
                };
                self.save(&lock).map(|()| verified)
            }
            Err(e) => Err(e),
        };
        self.end(lock, result)
    }

    /// Accepts that a verified contact's devices changed, without comparing safety
    /// numbers again: the contact becomes unverified, and sending to conversations with
    /// them is no longer blocked. Returns the contact's verification (unverified).
    pub async fn acknowledge_change(&mut self, contact: &UserId) -> Result<Verification> {
        let lock = self.begin().await?;
        let result = if self.state.contacts.remove(contact).is_some() {
            self.save(&lock)
        } else {
            Ok(())
        };
        self.end(lock, result.map(|()| Verification::Unverified))
    }

    /// Whether `contact` is verified, and whether their devices changed since; cheaper
    /// than [`Messenger::safety_number`] (no number is computed).
    pub async fn verification(&mut self, contact: &UserId) -> Result<Verification> {
        let lock = self.begin().await?;
        let result = self.verification_now(contact);
        self.end(lock, result)
    }

    fn verification_now(&self, contact: &UserId) -> Result<Verification> {
        let Some(c) = self.state.contacts.get(contact) else {
            return Ok(Verification::Unverified);
        };
        let (_, theirs) = self.shared_device_keys(contact)?;
        Ok(verification_of(c, &theirs))
    }

    /// This user's and `contact`'s keys in shared groups that the directory vouches for.
    async fn vouched_shared_keys(&mut self, contact: &UserId) -> Result<(BTreeSet<DeviceKey>, BTreeSet<DeviceKey>)> {
        if contact == &self.state.user_id {
            return Err(MessengerError::OwnSafetyNumber(contact.clone()));
        }
        let (own, theirs) = self.shared_device_keys(contact)?;
        let me = self.state.user_id.clone();
        Ok((self.vouched(&me, own).await?, self.vouched(contact, theirs).await?))
    }

    /// The keys of `keys` (`user`'s) the device key directory vouches for.
    async fn vouched(&mut self, user: &UserId, keys: BTreeSet<DeviceKey>) -> Result<BTreeSet<DeviceKey>> {
        let leaves: Vec<TreeLeaf> = keys
            .iter()
            .zip(0u32..)
            .map(|(key, index)| TreeLeaf {
                index,
                identity: credential_identity(user, &key.device_id),
                signature_key: hex::decode(&key.signature_key).unwrap_or_default(),
            })
            .collect();
        let refused: BTreeSet<u32> = self
            .check_leaves(&leaves, &leaves)
            .await?
            .into_iter()
            .map(|r| r.leaf_index)
            .collect();
        Ok(keys
            .into_iter()
            .zip(0u32..)
            .filter(|(_, index)| !refused.contains(index))
            .map(|(key, _)| key)
            .collect())
    }

    fn safety_number_of(
        &self,
        contact: &UserId,
        (own, theirs): (BTreeSet<DeviceKey>, BTreeSet<DeviceKey>),
    ) -> Result<SafetyNumber> {
        let me = &self.state.user_id;
        if theirs.is_empty() {
            return Err(MessengerError::NoSharedGroup(contact.clone()));
        }
        let verification = self
            .state
            .contacts
            .get(contact)
            .map_or(Verification::Unverified, |c| verification_of(c, &theirs));
        Ok(SafetyNumber {
            digits: safety_digits((me, &own), (contact, &theirs)),
            user: me.clone(),
            contact: contact.clone(),
            own_devices: own.into_iter().collect(),
            contact_devices: theirs.into_iter().collect(),
            verification,
            transparent_since_epoch: self.published_since(contact),
        })
    }

    /// This user's and `contact`'s device keys in the groups (this device is a member of)
    /// where the contact has a device.
    fn shared_device_keys(&self, contact: &UserId) -> Result<(BTreeSet<DeviceKey>, BTreeSet<DeviceKey>)> {
        let (mut own, mut theirs) = (BTreeSet::new(), BTreeSet::new());
        for (group_id, conversation) in &self.state.conversations {
            if !conversation.member {
                continue;
            }
            let Some(group) = self.load_group(group_id)?.filter(|g| g.is_active()) else {
                continue;
            };
            let devices: Vec<_> = group
                .members()
                .filter_map(|m| {
                    member_of(&m.credential).map(|gm| {
                        let key = DeviceKey {
                            device_id: gm.device_id,
                            signature_key: hex::encode(&m.signature_key),
                        };
                        (gm.user_id, key)
                    })
                })
                .collect();
            if !devices.iter().any(|(user, _)| user == contact) {
                continue;
            }
            for (user, key) in devices {
                if &user == contact {
                    theirs.insert(key);
                } else if user == self.state.user_id {
                    own.insert(key);
                }
            }
        }
        Ok((own, theirs))
    }

    /// Flags verified contacts whose devices (in shared groups) differ from the verified
    /// ones, with an [`Event::VerifiedContactChanged`] the first time.
    pub(crate) fn check_verified_contacts(&mut self) -> Result<()> {
        let watched: Vec<UserId> = self
            .state
            .contacts
            .iter()
            .filter(|(_, c)| !c.changed)
            .map(|(u, _)| u.clone())
            .collect();
        for user in watched {
            let (_, now) = self.shared_device_keys(&user)?;
            let Some(contact) = self.state.contacts.get_mut(&user) else {
                continue;
            };
            if now.is_empty() || now == contact.verified_keys {
                continue;
            }
            contact.changed = true;
            let (added, removed) = difference(&contact.verified_keys, &now);
            self.undelivered
                .push(Event::VerifiedContactChanged { user, added, removed });
        }
        Ok(())
    }
}

/// A verified contact's state given their devices now.
fn verification_of(contact: &Contact, now: &BTreeSet<DeviceKey>) -> Verification {
    if !contact.changed && &contact.verified_keys == now {
        Verification::Verified {
            verified_at: contact.verified_at,
        }
    } else {
        let (added, removed) = difference(&contact.verified_keys, now);
        Verification::Changed {
            verified_at: contact.verified_at,
            added,
            removed,
        }
    }
}

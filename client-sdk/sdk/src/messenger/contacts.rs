//! Safety numbers of this user and a contact, verification, and the warning when a
//! verified contact's devices change (see `safety.rs` for the number itself).

use std::collections::BTreeSet;

use parley_specs::UserId;
use time::OffsetDateTime;

use super::error::MessengerError;
use super::events::Event;
use super::groups::member_of;
use super::safety::{Contact, DeviceKey, SafetyNumber, Verification, difference, safety_digits};
use super::{Messenger, Result};

impl Messenger {
    /// The safety number of this user and `contact`, from both users' devices in the
    /// groups this device shares with the contact; and whether the contact is verified.
    /// Both people see the same number when their devices are up to date (sync first).
    pub async fn safety_number(&mut self, contact: &UserId) -> Result<SafetyNumber> {
        let lock = self.begin().await?;
        let result = self.safety_number_now(contact);
        self.end(lock, result)
    }

    /// Marks `contact` verified with the devices the safety number covers now (after the
    /// two people compared it). A later change of those devices raises
    /// [`Event::VerifiedContactChanged`].
    pub async fn mark_verified(&mut self, contact: &UserId) -> Result<SafetyNumber> {
        let lock = self.begin().await?;
        let result = match self.safety_number_now(contact) {
            Ok(number) => {
                self.state.contacts.insert(
                    contact.clone(),
                    Contact {
                        verified_keys: number.contact_devices.iter().cloned().collect(),
                        verified_at: OffsetDateTime::now_utc(),
                        changed: false,
                    },
                );
                self.save(&lock).and_then(|()| self.safety_number_now(contact))
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

    fn safety_number_now(&self, contact: &UserId) -> Result<SafetyNumber> {
        let me = &self.state.user_id;
        if contact == me {
            return Err(MessengerError::OwnSafetyNumber(contact.clone()));
        }
        let (own, theirs) = self.shared_device_keys(contact)?;
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

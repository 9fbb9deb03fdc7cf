import { useCallback, useEffect, useState } from "react";
import { api, plainWords } from "../api";
import type { Api, Contact } from "../api";
import { safetyNumberGroups } from "../format";
import { Dialog, ErrorNote, Spinner } from "./Dialog";

export function SafetyNumber({ value }: { value: string }) {
  const groups = safetyNumberGroups(value);
  return (
    <div
      role="group"
      aria-label="Safety number"
      className="grid grid-cols-3 gap-x-4 gap-y-1 rounded-md bg-slate-100 p-3 font-mono text-lg tracking-wider sm:grid-cols-4 dark:bg-slate-800"
    >
      {groups.map((g, i) => (
        <span key={i}>
          {g}
          {i < groups.length - 1 ? " " : ""}
        </span>
      ))}
    </div>
  );
}

const VERIFICATION_TEXT: Record<Contact["verification"], string> = {
  verified: "Verified",
  unverified: "Not verified",
  changed: "Devices changed since you verified",
};

interface Props {
  user_id: string;
  onClose: () => void;
  /** Called after the contact's state changed (verify / acknowledge). */
  onChanged?: (c: Contact) => void;
  client?: Pick<Api, "contact" | "verify" | "acknowledge">;
}

export function ProfileDialog({ user_id, onClose, onChanged, client = api }: Props) {
  const [contact, setContact] = useState<Contact | null>(null);
  const [error, setError] = useState<{ message: string; retry: () => void } | null>(null);
  const [busy, setBusy] = useState(false);

  const load = useCallback(async () => {
    setError(null);
    try {
      setContact(await client.contact(user_id));
    } catch (e) {
      setError({ message: plainWords(e), retry: () => void load() });
    }
  }, [client, user_id]);

  useEffect(() => {
    void load();
  }, [load]);

  async function act(kind: "verify" | "acknowledge") {
    setBusy(true);
    setError(null);
    try {
      const c = kind === "verify" ? await client.verify(user_id) : await client.acknowledge(user_id);
      setContact(c);
      onChanged?.(c);
    } catch (e) {
      setError({ message: plainWords(e), retry: () => void act(kind) });
    } finally {
      setBusy(false);
    }
  }

  const title = `Profile of ${user_id}`;
  return (
    <Dialog title={title} onClose={onClose}>
      {!contact && !error && <Spinner label="Loading profile…" />}
      {contact && (
        <div className="space-y-3">
          <p className="text-sm">
            Compare this safety number with {user_id} in person or over a call you trust. If it
            matches on both sides, mark them verified.
          </p>
          <SafetyNumber value={contact.safety_number} />
          <p className="font-medium">
            <span
              aria-hidden="true"
              className={`mr-2 inline-block h-2 w-2 rounded-full ${
                contact.verification === "verified"
                  ? "bg-green-600"
                  : contact.verification === "changed"
                    ? "bg-amber-500"
                    : "bg-slate-400"
              }`}
            />
            {VERIFICATION_TEXT[contact.verification]}
          </p>
          {contact.verification === "changed" ? (
            <div
              role="alert"
              className="space-y-2 rounded-md border border-amber-500 bg-amber-50 p-3 text-sm dark:bg-amber-950"
            >
              <p>
                {user_id} has new or removed devices since you verified them. Compare the safety
                number again.
              </p>
              {(contact.added.length > 0 || contact.removed.length > 0) && (
                <ul className="list-disc pl-5">
                  {contact.added.map((d) => (
                    <li key={`a-${d.device_id}`}>New device {d.device_id}</li>
                  ))}
                  {contact.removed.map((d) => (
                    <li key={`r-${d.device_id}`}>Removed device {d.device_id}</li>
                  ))}
                </ul>
              )}
              <div className="flex flex-wrap gap-2">
                <button type="button" className="btn-primary" disabled={busy} onClick={() => void act("verify")}>
                  Mark verified
                </button>
                <button type="button" className="btn" disabled={busy} onClick={() => void act("acknowledge")}>
                  Acknowledge without verifying
                </button>
              </div>
            </div>
          ) : contact.verification === "unverified" ? (
            <button type="button" className="btn-primary" disabled={busy} onClick={() => void act("verify")}>
              Mark verified
            </button>
          ) : null}
          {busy && <Spinner label="Saving…" />}
          {contact.devices.length > 0 && (
            <details className="text-sm">
              <summary className="cursor-pointer">Devices ({contact.devices.length})</summary>
              <ul className="mt-1 space-y-1">
                {contact.devices.map((d) => (
                  <li key={d.device_id} className="break-all font-mono text-xs">
                    {d.device_id}
                    {d.signature_key ? ` · ${d.signature_key}` : ""}
                  </li>
                ))}
              </ul>
            </details>
          )}
        </div>
      )}
      {error && <ErrorNote message={error.message} onRetry={error.retry} />}
    </Dialog>
  );
}

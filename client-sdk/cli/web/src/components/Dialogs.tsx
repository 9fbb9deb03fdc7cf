import { useCallback, useEffect, useState } from "react";
import type { FormEvent } from "react";
import { api, plainWords } from "../api";
import type { Conversation, Device } from "../api";
import { useApp } from "../context";
import { otherMembers, parseUserList, userVerification } from "../format";
import { Dialog, ErrorNote, Spinner } from "./Dialog";

const PEOPLE_LABEL = "People (user ids, comma-separated)";

function PeopleForm({
  submitLabel,
  busyLabel,
  allowEmpty,
  onSubmit,
}: {
  submitLabel: string;
  busyLabel: string;
  allowEmpty: boolean;
  onSubmit: (users: string[]) => Promise<void>;
}) {
  const [value, setValue] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  async function submit(e?: FormEvent) {
    e?.preventDefault();
    const users = parseUserList(value);
    if (!allowEmpty && users.length === 0) {
      setError("Enter at least one user id, like bob@chat.example.org.");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await onSubmit(users);
    } catch (err) {
      setError(plainWords(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <form onSubmit={submit} noValidate className="space-y-3">
      <div>
        <label htmlFor="people" className="label">
          {PEOPLE_LABEL}
        </label>
        <input
          id="people"
          className="input"
          autoCapitalize="none"
          placeholder="bob@chat.example.org, carol@other.example"
          value={value}
          onChange={(e) => setValue(e.target.value)}
        />
        <p className="mt-1 text-xs text-slate-600 dark:text-slate-400">
          People on other servers work too: use their full user id (a bare name means your server).
        </p>
      </div>
      <button type="submit" className="btn-primary" disabled={busy}>
        {submitLabel}
      </button>
      {busy && <Spinner label={busyLabel} />}
      {error && <ErrorNote message={error} onRetry={busy ? undefined : () => void submit()} />}
    </form>
  );
}

export function NewConversationDialog() {
  const { dispatch, openDialog, state } = useApp();
  return (
    <Dialog title="New conversation" onClose={() => openDialog(null)}>
      <PeopleForm
        submitLabel="Create"
        busyLabel={
          state.sync.state === "syncing"
            ? `Creating the group and adding people (${state.sync.pending ?? "…"} left)…`
            : "Creating the group and adding people…"
        }
        allowEmpty
        onSubmit={async (users) => {
          const c = await api.createConversation(users);
          dispatch({ type: "conversation", conversation: c });
          dispatch({ type: "select", group_id: c.group_id });
          openDialog(null);
        }}
      />
    </Dialog>
  );
}

export function AddPeopleDialog({ group_id }: { group_id: string }) {
  const { dispatch, openDialog } = useApp();
  return (
    <Dialog title="Add people" onClose={() => openDialog(null)}>
      <PeopleForm
        submitLabel="Add"
        busyLabel="Adding people…"
        allowEmpty={false}
        onSubmit={async (users) => {
          const c = await api.addMembers(group_id, users);
          dispatch({ type: "conversation", conversation: c });
          openDialog(null);
        }}
      />
    </Dialog>
  );
}

const VERIFICATION_SHORT = { verified: "verified", unverified: "not verified", changed: "devices changed" };

export function MembersDialog({ conversation: c }: { conversation: Conversation }) {
  const { openDialog, run, dispatch, me, state } = useApp();
  const others = otherMembers(c, me);
  return (
    <Dialog title="Members" onClose={() => openDialog(null)}>
      <ul className="space-y-2" role="list">
        <li className="text-sm">{me ?? "You"} (you)</li>
        {others.map((u) => {
          const v = userVerification(c, u);
          const presence = state.presence[u];
          return (
            <li key={u} className="flex flex-wrap items-center gap-2">
              <span className="min-w-0 flex-1 break-all">
                {u}{" "}
                <span className="text-xs text-slate-600 dark:text-slate-400">
                  ({VERIFICATION_SHORT[v]}
                  {presence ? `, ${presence}` : ""})
                </span>
              </span>
              <button
                type="button"
                className="btn"
                aria-label={`Profile of ${u}`}
                onClick={() => openDialog({ kind: "profile", user_id: u })}
              >
                Profile
              </button>
              {c.member && (
                <button
                  type="button"
                  className="btn-danger"
                  aria-label={`Remove ${u}`}
                  onClick={() =>
                    void run(`Remove ${u}`, async () => {
                      const next = await api.removeMember(c.group_id, u);
                      dispatch({ type: "conversation", conversation: next });
                    })
                  }
                >
                  Remove
                </button>
              )}
            </li>
          );
        })}
      </ul>
    </Dialog>
  );
}

export function ConfirmDeleteDialog({ group_id }: { group_id: string }) {
  const { openDialog, dispatch } = useApp();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  async function del() {
    setBusy(true);
    setError(null);
    try {
      await api.deleteConversation(group_id);
      dispatch({ type: "conversation_removed", group_id });
      openDialog(null);
    } catch (e) {
      setError(plainWords(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <Dialog title="Delete conversation" onClose={() => openDialog(null)}>
      <p className="mb-3 text-sm">
        This leaves the group (if you are still in it) and deletes its history from this device
        for good. It can't be undone.
      </p>
      <div className="flex gap-2">
        <button type="button" className="btn-danger" disabled={busy} onClick={() => void del()}>
          Delete
        </button>
        <button type="button" className="btn" onClick={() => openDialog(null)}>
          Cancel
        </button>
      </div>
      {busy && <Spinner label="Deleting…" />}
      {error && <ErrorNote message={error} onRetry={() => void del()} />}
    </Dialog>
  );
}

export function DevicesDialog() {
  const { openDialog } = useApp();
  const [devices, setDevices] = useState<Device[] | null>(null);
  const [error, setError] = useState<{ message: string; retry: () => void } | null>(null);
  const [removing, setRemoving] = useState<string | null>(null);

  const load = useCallback(async () => {
    setError(null);
    try {
      const list = await api.devices();
      setDevices(Array.isArray(list) ? list : []);
    } catch (e) {
      setError({ message: plainWords(e), retry: () => void load() });
    }
  }, []);

  useEffect(() => {
    void load();
  }, [load]);

  async function remove(id: string) {
    setRemoving(id);
    setError(null);
    try {
      await api.deleteDevice(id);
      setDevices((ds) => (ds ? ds.filter((d) => d.device_id !== id) : ds));
    } catch (e) {
      setError({ message: plainWords(e), retry: () => void remove(id) });
    } finally {
      setRemoving(null);
    }
  }

  return (
    <Dialog title="Devices" onClose={() => openDialog(null)}>
      {!devices && !error && <Spinner label="Loading devices…" />}
      {devices && (
        <ul role="list" className="space-y-2">
          {devices.map((d) => (
            <li key={d.device_id} className="flex flex-wrap items-center gap-2">
              <span className="min-w-0 flex-1">
                <span className="block break-all">
                  {d.display_name || d.device_id}
                  {d.this_device ? " (this device)" : ""}
                </span>
                <span className="block break-all text-xs text-slate-600 dark:text-slate-400">
                  {d.device_id}
                  {d.last_seen_at ? ` · last seen ${new Date(d.last_seen_at).toLocaleString()}` : ""}
                </span>
              </span>
              {!d.this_device && (
                <button
                  type="button"
                  className="btn-danger"
                  aria-label={`Remove device ${d.device_id}`}
                  disabled={removing === d.device_id}
                  onClick={() => void remove(d.device_id)}
                >
                  Remove
                </button>
              )}
            </li>
          ))}
        </ul>
      )}
      {removing && <Spinner label="Removing device…" />}
      {error && <ErrorNote message={error.message} onRetry={error.retry} />}
    </Dialog>
  );
}

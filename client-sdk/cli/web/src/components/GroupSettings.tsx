import { useState } from "react";
import type { FormEvent } from "react";
import { api, plainWords } from "../api";
import type { Conversation } from "../api";
import { useApp } from "../context";
import { Dialog, ErrorNote, Spinner } from "./Dialog";

/** The group timers offered, in seconds (0: off). */
const TIMERS: [number, string][] = [
  [0, "Off"],
  [3600, "1 hour"],
  [86_400, "1 day"],
  [7 * 86_400, "1 week"],
  [30 * 86_400, "30 days"],
];

/** The users of a conversation, this user first. */
function memberUsers(c: Conversation, me?: string): string[] {
  const all = Array.from(new Set(c.members.map((m) => m.user_id)));
  return all.sort((a, b) => (a === me ? -1 : b === me ? 1 : a.localeCompare(b)));
}

/**
 * The group settings panel: name and topic (encrypted in the group: servers never see
 * them) and roles. Only admins may change them; the hub and every member refuse changes
 * by others.
 */
export function GroupSettingsDialog({ conversation: c }: { conversation: Conversation }) {
  const { openDialog, dispatch, me, run } = useApp();
  const s = c.settings;
  const [name, setName] = useState(s?.name ?? "");
  const [topic, setTopic] = useState(s?.topic ?? "");
  const currentTimer = s?.timer_secs ?? 0;
  const [timer, setTimer] = useState(currentTimer);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const isAdmin = s?.is_admin ?? false;
  const roles = (s?.admins.length ?? 0) > 0;

  async function save(e?: FormEvent) {
    e?.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const next = await api.updateSettings(c.group_id, {
        ...(name !== (s?.name ?? "") ? { name } : {}),
        ...(topic !== (s?.topic ?? "") ? { topic } : {}),
        ...(timer !== currentTimer ? { timer_secs: timer } : {}),
      });
      dispatch({ type: "conversation", conversation: next });
    } catch (err) {
      setError(plainWords(err));
    } finally {
      setBusy(false);
    }
  }

  const changed = name !== (s?.name ?? "") || topic !== (s?.topic ?? "") || timer !== currentTimer;
  const timers = TIMERS.some(([secs]) => secs === currentTimer)
    ? TIMERS
    : [...TIMERS, [currentTimer, `${currentTimer} s`] as [number, string]];
  return (
    <Dialog title="Group settings" onClose={() => openDialog(null)}>
      <form onSubmit={save} noValidate className="space-y-3">
        <div>
          <label htmlFor="group-name" className="label">
            Name
          </label>
          <input
            id="group-name"
            className="input"
            maxLength={100}
            value={name}
            disabled={!isAdmin}
            onChange={(e) => setName(e.target.value)}
          />
        </div>
        <div>
          <label htmlFor="group-topic" className="label">
            Topic
          </label>
          <input
            id="group-topic"
            className="input"
            maxLength={500}
            value={topic}
            disabled={!isAdmin}
            onChange={(e) => setTopic(e.target.value)}
          />
        </div>
        <div>
          <label htmlFor="group-timer" className="label">
            Disappearing messages (for everyone)
          </label>
          <select
            id="group-timer"
            className="input"
            value={timer}
            disabled={!isAdmin}
            onChange={(e) => setTimer(Number(e.target.value))}
          >
            {timers.map(([secs, label]) => (
              <option key={secs} value={secs}>
                {label}
              </option>
            ))}
          </select>
        </div>
        <p className="text-xs text-slate-600 dark:text-slate-400">
          {s && !s.name_known
            ? "This device does not have the group's name key yet. "
            : "The name and topic are end-to-end encrypted: servers never see them. "}
          {isAdmin ? "You are an admin." : "Only admins can change them."}
        </p>
        {isAdmin && (
          <button type="submit" className="btn-primary" disabled={busy || !changed}>
            Save
          </button>
        )}
        {busy && <Spinner label="Saving…" />}
        {error && <ErrorNote message={error} onRetry={busy ? undefined : () => void save()} />}
      </form>
      <h3 className="mt-4 mb-2 text-sm font-semibold">Roles</h3>
      {!roles ? (
        <p className="text-sm">This group was made without roles: every member can change it.</p>
      ) : (
        <ul className="space-y-2" role="list" aria-label="Roles">
          {memberUsers(c, me).map((u) => {
            const admin = s?.admins.includes(u) ?? false;
            return (
              <li key={u} className="flex flex-wrap items-center gap-2">
                <span className="min-w-0 flex-1 break-all">
                  {u}
                  {u === me ? " (you)" : ""}{" "}
                  <span className="text-xs text-slate-600 dark:text-slate-400">{admin ? "admin" : "member"}</span>
                </span>
                {isAdmin && (
                  <button
                    type="button"
                    className="btn"
                    aria-label={admin ? `Demote ${u}` : `Promote ${u}`}
                    onClick={() =>
                      void run(admin ? `Demote ${u}` : `Promote ${u}`, async () => {
                        const next = await api.setAdmin(c.group_id, u, !admin);
                        dispatch({ type: "conversation", conversation: next });
                      })
                    }
                  >
                    {admin ? "Demote" : "Promote"}
                  </button>
                )}
              </li>
            );
          })}
        </ul>
      )}
    </Dialog>
  );
}

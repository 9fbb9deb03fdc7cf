import { useCallback, useEffect, useState } from "react";
import { api, plainWords } from "../api";
import type { Api, BackupStatusView, RestoreResult } from "../api";
import { Dialog, ErrorNote, Spinner } from "./Dialog";

function bytes(n: number): string {
  if (n < 1024) return `${n} bytes`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** The recovery key, shown once: the dialog cannot be left before "I have saved it". */
export function RecoveryKeyShown({ recoveryKey, onDone }: { recoveryKey: string; onDone: () => void }) {
  const [saved, setSaved] = useState(false);
  return (
    <div className="space-y-3">
      <p className="text-sm">
        This is your recovery key. It is shown only this once. Write it down or keep it in a password
        manager: with it and your password you get your history back on a new device. Anyone who has
        it and can sign in to your account can read your backed-up history.
      </p>
      <div
        role="group"
        aria-label="Recovery key"
        className="rounded-md bg-slate-100 p-3 font-mono text-lg tracking-wider break-all dark:bg-slate-800"
      >
        {recoveryKey}
      </div>
      <label className="flex items-center gap-2 text-sm">
        <input type="checkbox" checked={saved} onChange={(e) => setSaved(e.target.checked)} />
        I have saved my recovery key somewhere safe
      </label>
      <button type="button" className="btn-primary" disabled={!saved} onClick={onDone}>
        Done
      </button>
    </div>
  );
}

interface BackupProps {
  onClose: () => void;
  client?: Pick<Api, "backupStatus" | "enableBackup" | "disableBackup">;
}

/** Key backup: status, turning it on (the recovery key shown once) and off. */
export function BackupDialog({ onClose, client = api }: BackupProps) {
  const [status, setStatus] = useState<BackupStatusView | null>(null);
  const [recoveryKey, setRecoveryKey] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<{ message: string; retry: () => void } | null>(null);

  const load = useCallback(async () => {
    setError(null);
    try {
      setStatus(await client.backupStatus());
    } catch (e) {
      setError({ message: plainWords(e), retry: () => void load() });
    }
  }, [client]);

  useEffect(() => {
    void load();
  }, [load]);

  async function act(kind: "enable" | "disable") {
    setBusy(true);
    setError(null);
    try {
      if (kind === "enable") {
        const enabled = await client.enableBackup();
        setRecoveryKey(enabled.recovery_key);
        setStatus(enabled.status);
      } else {
        await client.disableBackup();
        await load();
      }
    } catch (e) {
      setError({ message: plainWords(e), retry: () => void act(kind) });
    } finally {
      setBusy(false);
    }
  }

  // While the key is on screen, closing is the "Done" button only.
  const close = recoveryKey ? () => {} : onClose;
  return (
    <Dialog title="Backup" onClose={close}>
      {recoveryKey ? (
        <RecoveryKeyShown recoveryKey={recoveryKey} onDone={() => setRecoveryKey(null)} />
      ) : (
        <div className="space-y-3">
          {!status && !error && <Spinner label="Loading backup…" />}
          {status && !status.enabled && (
            <>
              <p className="text-sm">
                Keep an end-to-end encrypted backup of your conversations on your homeserver, so a new
                device gets your history back. Your server cannot read it.
              </p>
              <button type="button" className="btn-primary" disabled={busy} onClick={() => void act("enable")}>
                Turn on backup
              </button>
            </>
          )}
          {status && status.enabled && (
            <>
              <p className="text-sm">
                Backup is on.{" "}
                {status.last_backup_at
                  ? `Last backup ${new Date(status.last_backup_at).toLocaleString()}.`
                  : "Not backed up yet."}
              </p>
              <p className="text-sm">
                {status.chunks} parts, {bytes(status.used_bytes)} of {bytes(status.quota_bytes)} used on your
                server.
              </p>
              <button type="button" className="btn-danger" disabled={busy} onClick={() => void act("disable")}>
                Turn off and delete the backup
              </button>
            </>
          )}
          {busy && <Spinner label="Working…" />}
        </div>
      )}
      {error && <ErrorNote message={error.message} onRetry={error.retry} />}
    </Dialog>
  );
}

interface RestoreProps {
  onClose: () => void;
  /** Chunks restored so far, from the `restore` events. */
  progress: { done: number; total: number } | null;
  onRestored?: (r: RestoreResult) => void;
  client?: Pick<Api, "restore">;
}

/** Restore on a new device: the recovery key, then progress, then what came back. */
export function RestoreDialog({ onClose, progress, onRestored, client = api }: RestoreProps) {
  const [key, setKey] = useState("");
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<RestoreResult | null>(null);
  const [error, setError] = useState<string | null>(null);

  async function restore() {
    if (!key.trim()) {
      setError("Enter your recovery key.");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const r = await client.restore(key.trim());
      setResult(r);
      onRestored?.(r);
    } catch (e) {
      setError(plainWords(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <Dialog title="Restore your history" onClose={busy ? () => {} : onClose}>
      {result ? (
        <div className="space-y-3">
          <p role="status" className="text-sm">
            Restored {result.conversations} conversations with {result.messages_added} messages
            {result.joined ? `; joined ${result.joined} of them from this device` : ""}.
          </p>
          <button type="button" className="btn-primary" onClick={onClose}>
            Done
          </button>
        </div>
      ) : (
        <form
          className="space-y-3"
          onSubmit={(e) => {
            e.preventDefault();
            void restore();
          }}
        >
          <p className="text-sm">
            If you turned on backup on another device, enter its recovery key to get your history back on
            this one.
          </p>
          <label className="block text-sm">
            Recovery key
            <input
              className="input mt-1 w-full font-mono"
              autoComplete="off"
              value={key}
              onChange={(e) => setKey(e.target.value)}
              disabled={busy}
            />
          </label>
          {busy && (
            <div role="status" className="space-y-1 text-sm">
              <Spinner label={progress ? `Restoring… ${progress.done} of ${progress.total}` : "Restoring…"} />
              {progress && progress.total > 0 && (
                <progress className="w-full" max={progress.total} value={progress.done} aria-label="Restore progress" />
              )}
            </div>
          )}
          {error && (
            <p role="alert" className="text-sm text-red-700 dark:text-red-300">
              {error}
            </p>
          )}
          <div className="flex gap-2">
            <button type="submit" className="btn-primary" disabled={busy}>
              Restore
            </button>
            <button type="button" className="btn" disabled={busy} onClick={onClose}>
              Not now
            </button>
          </div>
        </form>
      )}
    </Dialog>
  );
}

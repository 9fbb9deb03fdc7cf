import { useState } from "react";
import type { FormEvent } from "react";
import { ApiError, api, plainWords } from "../api";
import type { Api, SessionStatus, SignInRequest } from "../api";
import type { SyncState } from "../state";
import { ErrorNote, Spinner } from "./Dialog";

interface Props {
  onSignedIn: (s: SessionStatus, mode?: "login" | "register") => void;
  sync?: SyncState;
  client?: Pick<Api, "login" | "register">;
  defaultServer?: string;
}

type Mode = "login" | "register";

export function validateSignIn(f: SignInRequest, mode: Mode, privateCa: boolean): string | null {
  if (!f.server.trim()) return "Enter your server URL.";
  let url: URL;
  try {
    url = new URL(f.server.trim());
  } catch {
    return "The server URL must look like https://chat.example.org.";
  }
  if (url.protocol !== "https:") return "The server URL must start with https://.";
  if (!f.username.trim()) return "Enter your username.";
  if (!f.password) return "Enter your password.";
  if (mode === "register" && f.password.length < 10) return "Choose a password of at least 10 characters.";
  if (!f.passphrase) return "Enter the store passphrase (it protects this device's keys).";
  if (f.passphrase.length < 12)
    return "Choose a store passphrase of at least 12 characters.";
  if (privateCa && !/-----BEGIN CERTIFICATE-----/.test(f.ca_pem || ""))
    return "Paste the CA certificate in PEM form (-----BEGIN CERTIFICATE-----…).";
  return null;
}

export function SignIn({ onSignedIn, sync, client = api, defaultServer = "" }: Props) {
  const [server, setServer] = useState(defaultServer);
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [passphrase, setPassphrase] = useState("");
  const [privateCa, setPrivateCa] = useState(false);
  const [caPem, setCaPem] = useState("");
  const [busy, setBusy] = useState<Mode | null>(null);
  const [error, setError] = useState<{ message: string; mode: Mode } | null>(null);
  // Shown once the homeserver says the account has a second factor.
  const [needsCode, setNeedsCode] = useState(false);
  const [code, setCode] = useState("");

  async function submit(mode: Mode) {
    const req: SignInRequest = {
      server: server.trim(),
      username: username.trim(),
      password,
      passphrase,
    };
    if (privateCa) req.ca_pem = caPem;
    if (mode === "login" && needsCode) {
      if (!code.trim()) {
        setError({ message: "Enter the code from your authenticator app (or a recovery code).", mode });
        return;
      }
      req.second_factor = code.trim();
    }
    const invalid = validateSignIn(req, mode, privateCa);
    if (invalid) {
      setError({ message: invalid, mode });
      return;
    }
    setError(null);
    setBusy(mode);
    try {
      const s = mode === "register" ? await client.register(req) : await client.login(req);
      onSignedIn(s, mode);
    } catch (e) {
      if (e instanceof ApiError && e.code === "second_factor_required") {
        setNeedsCode(true);
        setError(null);
        return;
      }
      if (e instanceof ApiError && e.code === "invalid_second_factor") setCode("");
      setError({ message: plainWords(e), mode });
    } finally {
      setBusy(null);
    }
  }

  function onSubmit(e: FormEvent) {
    e.preventDefault();
    void submit("login");
  }

  const progress =
    busy &&
    (sync?.state === "syncing"
      ? `Syncing${sync.pending ? ` (${sync.pending} left)` : ""}…`
      : busy === "register"
        ? "Creating your account…"
        : "Signing in…");

  return (
    <main className="mx-auto flex min-h-screen max-w-md flex-col justify-center p-4">
      <h1 className="mb-4 text-2xl font-bold">Sign in to Parley</h1>
      <form onSubmit={onSubmit} noValidate className="space-y-3" aria-busy={busy ? true : undefined}>
        <div>
          <label className="label" htmlFor="si-server">
            Server URL
          </label>
          <input
            id="si-server"
            className="input"
            type="url"
            inputMode="url"
            autoComplete="url"
            placeholder="https://chat.example.org"
            value={server}
            onChange={(e) => setServer(e.target.value)}
          />
        </div>
        <div>
          <label className="label" htmlFor="si-user">
            Username
          </label>
          <input
            id="si-user"
            className="input"
            autoComplete="username"
            autoCapitalize="none"
            value={username}
            onChange={(e) => setUsername(e.target.value)}
          />
        </div>
        <div>
          <label className="label" htmlFor="si-pass">
            Password
          </label>
          <input
            id="si-pass"
            className="input"
            type="password"
            autoComplete="current-password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
          />
        </div>
        <div>
          <label className="label" htmlFor="si-phrase">
            Store passphrase
          </label>
          <input
            id="si-phrase"
            className="input"
            type="password"
            autoComplete="off"
            aria-describedby="si-phrase-help"
            value={passphrase}
            onChange={(e) => setPassphrase(e.target.value)}
          />
          <p id="si-phrase-help" className="mt-1 text-xs text-slate-600 dark:text-slate-400">
            Seals this new device's keys on disk. At least 12 characters.
          </p>
        </div>
        {needsCode && (
          <div>
            <label className="label" htmlFor="si-code">
              Second-factor code
            </label>
            <input
              id="si-code"
              className="input font-mono"
              inputMode="numeric"
              autoComplete="one-time-code"
              autoFocus
              aria-describedby="si-code-help"
              value={code}
              onChange={(e) => setCode(e.target.value)}
            />
            <p id="si-code-help" className="mt-1 text-xs text-slate-600 dark:text-slate-400">
              This account has two-step sign-in: enter the 6-digit code from your authenticator app,
              or one of your recovery codes.
            </p>
          </div>
        )}
        <div className="flex items-center gap-2">
          <input
            id="si-ca"
            type="checkbox"
            checked={privateCa}
            onChange={(e) => setPrivateCa(e.target.checked)}
          />
          <label htmlFor="si-ca" className="text-sm">
            Private CA
          </label>
        </div>
        {privateCa && (
          <div>
            <label className="label" htmlFor="si-pem">
              CA certificate (PEM)
            </label>
            <textarea
              id="si-pem"
              className="input font-mono"
              rows={5}
              placeholder="-----BEGIN CERTIFICATE-----"
              value={caPem}
              onChange={(e) => setCaPem(e.target.value)}
            />
          </div>
        )}
        <div className="flex flex-wrap gap-2 pt-1">
          <button type="submit" className="btn-primary" disabled={busy !== null}>
            Sign in
          </button>
          <button
            type="button"
            className="btn"
            disabled={busy !== null}
            onClick={() => void submit("register")}
          >
            Create account
          </button>
        </div>
        {progress && <Spinner label={progress} />}
        {error && (
          <ErrorNote
            message={error.message}
            onRetry={busy ? undefined : () => void submit(error.mode)}
          />
        )}
      </form>
    </main>
  );
}

export function Unlock({ onUnlocked, client = api }: { onUnlocked: (s: SessionStatus) => void; client?: Pick<Api, "unlock"> }) {
  const [passphrase, setPassphrase] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  async function submit(e?: FormEvent) {
    e?.preventDefault();
    if (!passphrase) {
      setError("Enter the store passphrase.");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      onUnlocked(await client.unlock(passphrase));
    } catch (err) {
      setError(plainWords(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <main className="mx-auto flex min-h-screen max-w-md flex-col justify-center p-4">
      <h1 className="mb-4 text-2xl font-bold">Unlock Parley</h1>
      <form onSubmit={submit} noValidate className="space-y-3">
        <div>
          <label className="label" htmlFor="ul-phrase">
            Store passphrase
          </label>
          <input
            id="ul-phrase"
            className="input"
            type="password"
            value={passphrase}
            onChange={(e) => setPassphrase(e.target.value)}
          />
        </div>
        <button type="submit" className="btn-primary" disabled={busy}>
          Unlock
        </button>
        {busy && <Spinner label="Unlocking…" />}
        {error && <ErrorNote message={error} onRetry={busy ? undefined : () => void submit()} />}
      </form>
    </main>
  );
}

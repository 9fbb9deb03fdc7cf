import { useCallback, useEffect, useState } from "react";
import type { FormEvent } from "react";
import { api, plainWords } from "../api";
import type { Api, RecoveryCodes, SecondFactorEnrollmentView, SecondFactorState } from "../api";
import { Dialog, ErrorNote, Spinner } from "./Dialog";

type Client = Pick<Api, "secondFactor" | "enrollSecondFactor" | "confirmSecondFactor" | "disableSecondFactor">;

/** The QR code the local process drew, as an image (never inserted as markup). */
export function svgDataUrl(svg: string): string {
  return `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`;
}

/** Two-step sign-in (TOTP): its state, turning it on (QR code, confirming code, recovery
 * codes shown once) and off (password and a code). */
export function SecondFactorDialog({ onClose, client = api }: { onClose: () => void; client?: Client }) {
  const [state, setState] = useState<SecondFactorState | null>(null);
  const [enrollment, setEnrollment] = useState<SecondFactorEnrollmentView | null>(null);
  const [recovery, setRecovery] = useState<RecoveryCodes | null>(null);
  const [code, setCode] = useState("");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<{ message: string; retry?: () => void } | null>(null);

  const load = useCallback(async () => {
    setError(null);
    try {
      setState(await client.secondFactor());
    } catch (e) {
      setError({ message: plainWords(e), retry: () => void load() });
    }
  }, [client]);

  useEffect(() => {
    void load();
  }, [load]);

  async function act(label: string, fn: () => Promise<void>) {
    setBusy(label);
    setError(null);
    try {
      await fn();
    } catch (e) {
      setError({ message: plainWords(e) });
    } finally {
      setBusy(null);
    }
  }

  const start = () =>
    act("Starting…", async () => {
      setEnrollment(await client.enrollSecondFactor());
      setCode("");
    });

  function confirm(e: FormEvent) {
    e.preventDefault();
    if (!code.trim()) {
      setError({ message: "Enter the code your authenticator app shows." });
      return;
    }
    void act("Checking the code…", async () => {
      setRecovery(await client.confirmSecondFactor(code.trim()));
      setEnrollment(null);
      setCode("");
      setState(await client.secondFactor());
    });
  }

  function disable(e: FormEvent) {
    e.preventDefault();
    if (!password || !code.trim()) {
      setError({ message: "Enter your password and a current code (or a recovery code)." });
      return;
    }
    void act("Turning it off…", async () => {
      await client.disableSecondFactor(password, code.trim());
      setPassword("");
      setCode("");
      setState(await client.secondFactor());
    });
  }

  return (
    <Dialog title="Two-step sign-in" onClose={onClose}>
      {!state && !error && <Spinner label="Loading…" />}
      {recovery && (
        <div role="status" className="mb-3 space-y-2 rounded-md border border-amber-500 p-3 text-sm">
          <p className="font-medium">
            Recovery codes: each one works once instead of a code. Save them now; they are not shown
            again.
          </p>
          <ul aria-label="Recovery codes" className="grid grid-cols-2 gap-1 font-mono">
            {recovery.recovery_codes.map((c) => (
              <li key={c}>{c}</li>
            ))}
          </ul>
          <button type="button" className="btn" onClick={() => setRecovery(null)}>
            I have saved them
          </button>
        </div>
      )}
      {state && !enrollment && !state.enabled && (
        <div className="space-y-2 text-sm">
          <p>
            Two-step sign-in is off. Turn it on to need a code from an authenticator app, besides
            your password, whenever a new device signs in.
          </p>
          <button type="button" className="btn-primary" disabled={busy !== null} onClick={() => void start()}>
            Turn on
          </button>
        </div>
      )}
      {enrollment && (
        <form onSubmit={confirm} noValidate className="space-y-2 text-sm">
          <p>Scan this QR code with your authenticator app, or enter the secret by hand.</p>
          <img
            src={svgDataUrl(enrollment.qr_svg)}
            alt="QR code of the two-step sign-in secret"
            className="mx-auto h-48 w-48 bg-white p-1"
          />
          <p className="break-all font-mono" aria-label="Secret">
            {enrollment.secret}
          </p>
          <label className="label" htmlFor="sf-code">
            Code shown by the app
          </label>
          <input
            id="sf-code"
            className="input font-mono"
            inputMode="numeric"
            autoComplete="one-time-code"
            value={code}
            onChange={(e) => setCode(e.target.value)}
          />
          <button type="submit" className="btn-primary" disabled={busy !== null}>
            Confirm
          </button>
        </form>
      )}
      {state && state.enabled && !enrollment && (
        <form onSubmit={disable} noValidate className="space-y-2 text-sm">
          <p>
            Two-step sign-in is on; {state.recovery_codes_left} recovery code
            {state.recovery_codes_left === 1 ? "" : "s"} left.
          </p>
          <label className="label" htmlFor="sf-password">
            Password
          </label>
          <input
            id="sf-password"
            className="input"
            type="password"
            autoComplete="current-password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
          />
          <label className="label" htmlFor="sf-off-code">
            Current code or recovery code
          </label>
          <input
            id="sf-off-code"
            className="input font-mono"
            autoComplete="one-time-code"
            value={code}
            onChange={(e) => setCode(e.target.value)}
          />
          <button type="submit" className="btn-danger" disabled={busy !== null}>
            Turn off
          </button>
        </form>
      )}
      {busy && <Spinner label={busy} />}
      {error && <ErrorNote message={error.message} onRetry={error.retry} />}
    </Dialog>
  );
}

import { useEffect, useRef, useState } from "react";
import type { FormEvent, KeyboardEvent } from "react";
import { ApiError, plainWords } from "../api";
import type { Message } from "../api";

interface Props {
  /** Resolves when sent; throws (an ApiError) when not. */
  onSend: (text: string) => Promise<void>;
  /** Sends a file with the text typed so far; `onProgress` takes a fraction. */
  onSendFile?: (file: File, text: string, onProgress: (fraction: number) => void) => Promise<void>;
  onTyping?: (typing: boolean) => void;
  disabled?: boolean;
  disabledReason?: string;
  /** The message being replied to (shown above the field), if any. */
  replyTo?: Message | null;
  onCancelReply?: () => void;
}

const TYPING_REFRESH_MS = 3000;

export function Composer({ onSend, onSendFile, onTyping, disabled, disabledReason, replyTo, onCancelReply }: Props) {
  const [text, setText] = useState("");
  const [progress, setProgress] = useState<number | null>(null);
  const fileRef = useRef<HTMLInputElement>(null);
  const [sending, setSending] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const lastTyping = useRef(0);
  const inputRef = useRef<HTMLTextAreaElement>(null);

  function typing(on: boolean) {
    if (!onTyping) return;
    const now = Date.now();
    if (on) {
      if (now - lastTyping.current < TYPING_REFRESH_MS) return;
      lastTyping.current = now;
      onTyping(true);
    } else if (lastTyping.current) {
      lastTyping.current = 0;
      onTyping(false);
    }
  }

  useEffect(() => () => typing(false), []); // eslint-disable-line react-hooks/exhaustive-deps

  useEffect(() => {
    if (replyTo) inputRef.current?.focus();
  }, [replyTo]);

  async function send() {
    const body = text.trim();
    if (!body || sending || disabled) return;
    setSending(true);
    setError(null);
    typing(false);
    try {
      await onSend(body);
      setText("");
    } catch (e) {
      // The conversation shows its own alert for a blocked send; keep this one short.
      setError(
        e instanceof ApiError && e.code === "verified_contact_changed"
          ? "a contact's devices changed. Review it, then retry."
          : plainWords(e),
      );
    } finally {
      setSending(false);
      inputRef.current?.focus();
    }
  }

  async function attach(file: File) {
    if (!onSendFile || sending || disabled) return;
    setSending(true);
    setError(null);
    setProgress(0);
    try {
      await onSendFile(file, text.trim(), (f) => setProgress(f));
      setText("");
    } catch (e) {
      setError(plainWords(e));
    } finally {
      setSending(false);
      setProgress(null);
      if (fileRef.current) fileRef.current.value = "";
    }
  }

  function onSubmit(e: FormEvent) {
    e.preventDefault();
    void send();
  }

  function onKeyDown(e: KeyboardEvent<HTMLTextAreaElement>) {
    if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault();
      void send();
    }
  }

  return (
    <form onSubmit={onSubmit} className="border-t border-slate-200 p-2 dark:border-slate-700">
      {error && (
        <div
          role="alert"
          className="mb-2 flex flex-wrap items-center gap-2 rounded-md bg-red-50 p-2 text-sm text-red-800 dark:bg-red-950 dark:text-red-200"
        >
          <span>Not sent — {error}</span>
          <button type="button" className="btn" onClick={() => void send()} disabled={sending}>
            Retry
          </button>
        </div>
      )}
      {replyTo && (
        <div
          role="status"
          aria-label="Replying to"
          className="mb-2 flex items-start gap-2 rounded-md border-l-4 border-blue-500 bg-slate-50 p-2 text-sm dark:bg-slate-800"
        >
          <span className="min-w-0 flex-1 truncate">
            Replying to <span className="font-medium">{replyTo.sender}</span>: {replyTo.text}
          </span>
          <button type="button" className="btn py-0" onClick={onCancelReply} aria-label="Cancel reply">
            ×
          </button>
        </div>
      )}
      <div className="flex items-end gap-2">
        <label htmlFor="composer" className="sr-only">
          Message
        </label>
        <textarea
          id="composer"
          ref={inputRef}
          className="input min-h-[2.5rem] flex-1 resize-none"
          rows={Math.min(6, Math.max(1, text.split("\n").length))}
          value={text}
          placeholder={disabled ? disabledReason : "Write a message"}
          disabled={disabled}
          aria-describedby="composer-help"
          onChange={(e) => {
            setText(e.target.value);
            typing(e.target.value.length > 0);
            if (!e.target.value) typing(false);
          }}
          onBlur={() => typing(false)}
          onKeyDown={onKeyDown}
        />
        <span id="composer-help" className="sr-only">
          Enter sends, Shift+Enter starts a new line.
        </span>
        {onSendFile && (
          <>
            <input
              ref={fileRef}
              type="file"
              className="sr-only"
              aria-label="File to attach"
              data-testid="attach-input"
              disabled={sending || disabled}
              onChange={(e) => {
                const f = e.target.files?.[0];
                if (f) void attach(f);
              }}
            />
            <button
              type="button"
              className="btn"
              disabled={sending || disabled}
              onClick={() => fileRef.current?.click()}
              aria-label="Attach a file"
              title="Attach a file (encrypted on this computer)"
            >
              Attach
            </button>
          </>
        )}
        <button type="submit" className="btn-primary" disabled={sending || disabled || !text.trim()}>
          Send
        </button>
      </div>
      {sending && progress !== null && (
        <div className="mt-1 flex items-center gap-2 text-xs text-slate-600 dark:text-slate-400">
          <progress
            aria-label="Upload progress"
            className="h-2 flex-1"
            max={100}
            value={Math.round(progress * 100)}
          />
          <span role="status">
            {progress < 1 ? `Uploading ${Math.round(progress * 100)}%` : "Encrypting and sending…"}
          </span>
        </div>
      )}
      {sending && progress === null && (
        <p role="status" className="mt-1 text-xs text-slate-600 dark:text-slate-400">
          Sending…
        </p>
      )}
    </form>
  );
}

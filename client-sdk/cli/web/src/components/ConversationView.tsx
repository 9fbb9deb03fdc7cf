import { useEffect, useRef, useState } from "react";
import { api, ApiError, plainWords } from "../api";
import type { Conversation, Message } from "../api";
import { useApp } from "../context";
import {
  TIMER_OPTIONS,
  conversationTitle,
  encryptionText,
  isExpired,
  otherMembers,
} from "../format";
import { Composer } from "./Composer";
import { ErrorNote, Spinner } from "./Dialog";
import { MessageItem } from "./MessageItem";

export function EncryptionIndicator({ conversation, me }: { conversation: Conversation; me?: string }) {
  const changed = conversation.encryption?.changed_contacts?.length > 0;
  const allVerified = conversation.encryption?.all_verified;
  return (
    <p
      role="status"
      aria-label="Encryption"
      title={conversation.encryption?.ciphersuite}
      className={`flex items-center gap-1 text-xs ${
        changed ? "text-amber-700 dark:text-amber-300" : "text-slate-600 dark:text-slate-400"
      }`}
    >
      <svg
        aria-hidden="true"
        viewBox="0 0 16 16"
        className={`h-3.5 w-3.5 shrink-0 ${changed ? "fill-amber-500" : allVerified ? "fill-green-600" : "fill-current"}`}
      >
        <path d="M4 7V5a4 4 0 1 1 8 0v2h1v8H3V7h1zm2 0h4V5a2 2 0 1 0-4 0v2z" />
      </svg>
      {encryptionText(conversation, me)}
    </p>
  );
}

export function TypingIndicator({ users }: { users: string[] }) {
  const text =
    users.length === 0
      ? ""
      : users.length === 1
        ? `${users[0]} is typing…`
        : `${users.slice(0, -1).join(", ")} and ${users[users.length - 1]} are typing…`;
  return (
    <p role="status" aria-live="polite" aria-label="Typing" className="h-5 px-3 text-xs italic text-slate-600 dark:text-slate-400">
      {text}
    </p>
  );
}

export function SendBlockedAlert({ users, onReview }: { users: string[]; onReview: () => void }) {
  const who = users.length ? users.join(", ") : "a verified contact";
  return (
    <div
      role="alert"
      className="mx-2 mb-2 flex flex-wrap items-center gap-2 rounded-md border border-amber-500 bg-amber-50 p-2 text-sm dark:bg-amber-950"
    >
      <span>Sending is paused: {who} changed devices. Review their safety number.</span>
      <button type="button" className="btn" onClick={onReview}>
        Review
      </button>
    </div>
  );
}

function useNow(active: boolean): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!active) return;
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, [active]);
  return now;
}

function download(blob: Blob, filename: string) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

interface Props {
  conversation: Conversation;
  onBack: () => void;
}

export function ConversationView({ conversation: c, onBack }: Props) {
  const { state, dispatch, me, openDialog, run } = useApp();
  const gid = c.group_id;
  const messages: Message[] | undefined = state.messages[gid];
  const [loadError, setLoadError] = useState<string | null>(null);
  const [blocked, setBlocked] = useState(false);
  const [replyTo, setReplyTo] = useState<Message | null>(null);
  const logRef = useRef<HTMLDivElement>(null);
  const others = otherMembers(c, me);
  const title = conversationTitle(c, me);

  const hasTimers = !!messages?.some((m) => m.expires_at);
  const now = useNow(hasTimers);

  async function load() {
    setLoadError(null);
    try {
      const ms = await api.messages(gid);
      dispatch({ type: "messages", group_id: gid, messages: ms });
    } catch (e) {
      setLoadError(plainWords(e));
    }
  }

  useEffect(() => {
    setBlocked(false);
    setReplyTo(null);
    void load();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [gid]);

  // Mark read up to the newest message while it is on screen.
  const lastSeq = messages?.length ? messages[messages.length - 1].seq : null;
  useEffect(() => {
    if (lastSeq === null) return;
    dispatch({ type: "read", group_id: gid });
    api.markRead(gid, lastSeq).catch(() => undefined);
  }, [gid, lastSeq, dispatch]);

  // Keep the newest message in view.
  useEffect(() => {
    const el = logRef.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [messages?.length]);

  // Sending is unblocked once the conversation says nobody's change is pending.
  const changed = c.encryption?.changed_contacts ?? [];
  useEffect(() => {
    if (changed.length === 0) setBlocked(false);
  }, [changed.length]);

  async function send(text: string) {
    try {
      const m = await api.sendMessage(gid, text, replyTo?.seq);
      dispatch({ type: "message", group_id: gid, message: m });
      setReplyTo(null);
    } catch (e) {
      if (e instanceof ApiError && e.code === "verified_contact_changed") {
        setBlocked(true);
        api
          .conversation(gid)
          .then((next) => dispatch({ type: "conversation", conversation: next }))
          .catch(() => undefined);
      }
      throw e;
    }
  }

  async function sendFile(file: File, text: string, onProgress: (fraction: number) => void) {
    const m = await api.sendFile(gid, file, file.name, text || undefined, onProgress);
    dispatch({ type: "message", group_id: gid, message: m });
  }

  function typing(on: boolean) {
    if (!c.member) return;
    api.typing(gid, on).catch(() => undefined);
  }

  const typingUsers = Object.keys(state.typing[gid] || {}).filter((u) => u !== me);

  const visible = (messages || []).filter((m) => !isExpired(m, now));
  const timerValue = c.timer_secs ? String(c.timer_secs) : "";
  const timerOptions = TIMER_OPTIONS.some((o) => o.value === timerValue)
    ? TIMER_OPTIONS
    : [...TIMER_OPTIONS, { value: timerValue, label: `${c.timer_secs} seconds` }];

  return (
    <section className="flex h-full min-h-0 flex-col" aria-labelledby="conv-title">
      <header className="space-y-1 border-b border-slate-200 p-2 dark:border-slate-700">
        <div className="flex items-center gap-2">
          <button type="button" className="btn sm:hidden" onClick={onBack} aria-label="Back to conversations">
            ←
          </button>
          <h2 id="conv-title" className="min-w-0 flex-1 truncate text-lg font-semibold">
            {title}
          </h2>
          <ul className="flex shrink-0 flex-wrap gap-2" aria-label="Presence">
            {others.map((u) => {
              const p = state.presence[u];
              if (!p) return null;
              return (
                <li key={u} className="flex items-center gap-1 text-xs" title={`${u} is ${p}`}>
                  <span
                    aria-hidden="true"
                    className={`inline-block h-2.5 w-2.5 rounded-full ${p === "online" ? "bg-green-500" : "bg-amber-400"}`}
                  />
                  <span className="sr-only">
                    {others.length > 1 ? `${u} ` : ""}
                    {p}
                  </span>
                </li>
              );
            })}
          </ul>
        </div>
        <EncryptionIndicator conversation={c} me={me} />
        <div className="flex flex-wrap items-center gap-2">
          <span className="flex items-center gap-1 text-sm">
            <label htmlFor="timer-select">Disappearing messages</label>
            <select
              id="timer-select"
              className="input w-auto py-1"
              value={timerValue}
              disabled={!c.member}
              onChange={(e) => {
                const v = e.target.value;
                const secs = v === "" ? null : Number(v);
                void run("Change the disappearing-message timer", async () => {
                  const next = await api.setTimer(gid, secs);
                  dispatch({ type: "conversation", conversation: next });
                });
              }}
            >
              {timerOptions.map((o) => (
                <option key={o.value} value={o.value}>
                  {o.label}
                </option>
              ))}
            </select>
          </span>
          {c.member && (
            <>
              <button type="button" className="btn" onClick={() => openDialog({ kind: "add", group_id: gid })}>
                Add people
              </button>
              <button type="button" className="btn" onClick={() => openDialog({ kind: "members", group_id: gid })}>
                Members
              </button>
              <button type="button" className="btn" onClick={() => openDialog({ kind: "settings", group_id: gid })}>
                Settings
              </button>
            </>
          )}
          <button
            type="button"
            className="btn"
            onClick={() =>
              void run("Export", async () => {
                const f = await api.exportConversation(gid, "text");
                download(f.blob, f.filename);
              })
            }
          >
            Export
          </button>
          {c.member && (
            <button
              type="button"
              className="btn"
              onClick={() =>
                void run("Leave", async () => {
                  await api.leave(gid);
                  const next = await api.conversation(gid).catch(() => null);
                  if (next) dispatch({ type: "conversation", conversation: next });
                  else dispatch({ type: "conversation", conversation: { ...c, member: false } });
                })
              }
            >
              Leave
            </button>
          )}
          <button type="button" className="btn-danger" onClick={() => openDialog({ kind: "delete", group_id: gid })}>
            Delete conversation
          </button>
        </div>
      </header>

      <div
        ref={logRef}
        role="log"
        aria-label="Messages"
        aria-live="polite"
        tabIndex={0}
        className="min-h-0 flex-1 space-y-3 overflow-y-auto p-3 focus:outline-none focus-visible:ring-2 focus-visible:ring-inset focus-visible:ring-blue-500"
      >
        {!messages && !loadError && <Spinner label="Loading messages…" />}
        {loadError && <ErrorNote message={loadError} onRetry={() => void load()} />}
        {messages && visible.length === 0 && (
          <p className="text-center text-sm text-slate-500">No messages yet.</p>
        )}
        {visible.map((m) => (
          <MessageItem
            key={m.seq}
            groupId={gid}
            message={m}
            now={now}
            quoted={m.reply_to != null ? visible.find((q) => q.seq === m.reply_to) ?? null : undefined}
            onDelete={(seq) =>
              void run("Delete message", async () => {
                await api.deleteMessage(gid, seq);
                dispatch({ type: "message_deleted", group_id: gid, seq });
              })
            }
            {...(c.member && !c.refused
              ? {
                  onReact: (seq: number, emoji: string) =>
                    void run("React", async () => {
                      const next = await api.react(gid, seq, emoji);
                      dispatch({ type: "event", now: Date.now(), event: { event: "message_changed", group_id: gid, message: next } });
                    }),
                  onReply: (target: Message) => setReplyTo(target),
                  onEdit: async (seq: number, text: string) => {
                    const next = await api.editMessage(gid, seq, text);
                    dispatch({ type: "event", now: Date.now(), event: { event: "message_changed", group_id: gid, message: next } });
                  },
                  onDeleteForEveryone: (seq: number) =>
                    void run("Delete for everyone", async () => {
                      await api.deleteMessage(gid, seq, true);
                      dispatch({ type: "message_deleted", group_id: gid, seq });
                      if (replyTo?.seq === seq) setReplyTo(null);
                    }),
                }
              : {})}
          />
        ))}
      </div>

      <TypingIndicator users={typingUsers} />
      {(blocked || changed.length > 0) && (
        <SendBlockedAlert
          users={changed}
          onReview={() => {
            const u = changed[0];
            if (u) openDialog({ kind: "profile", user_id: u });
            else openDialog({ kind: "members", group_id: gid });
          }}
        />
      )}
      {c.refused ? (
        <p
          role="alert"
          className="border-t border-red-300 bg-red-50 p-3 text-sm text-red-900 dark:border-red-800 dark:bg-red-950 dark:text-red-100"
        >
          This conversation is closed on this device: it refused a change that put a device in it that its owner's
          server does not vouch for ({c.refused}). Leave it and start a new conversation.
        </p>
      ) : c.member ? (
        <Composer
          onSend={send}
          onSendFile={sendFile}
          onTyping={typing}
          replyTo={replyTo}
          onCancelReply={() => setReplyTo(null)}
        />
      ) : (
        <p className="border-t border-slate-200 p-3 text-sm text-slate-600 dark:border-slate-700 dark:text-slate-400">
          You left this conversation. You can still read, export or delete its history.
        </p>
      )}
    </section>
  );
}

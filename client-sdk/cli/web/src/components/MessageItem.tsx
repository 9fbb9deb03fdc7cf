import { useState } from "react";
import type { FormEvent } from "react";
import type { Message } from "../api";
import { plainWords } from "../api";
import { deliveryText, deliveryTitle, disappearsText, serversText, timeText } from "../format";

/** The reactions offered in one click. */
export const QUICK_REACTIONS = ["👍", "❤️", "😂", "🎉", "😮", "😢"];

interface Props {
  message: Message;
  now: number;
  onDelete: (seq: number) => void;
  /** The message this one replies to: `null` when it is no longer here. */
  quoted?: Message | null;
  /** Reactions, replies, edits and deletes for everyone (absent: not offered). */
  onReact?: (seq: number, emoji: string) => void;
  onReply?: (message: Message) => void;
  /** Resolves when edited; throws when not. */
  onEdit?: (seq: number, text: string) => Promise<void>;
  onDeleteForEveryone?: (seq: number) => void;
}

const linkButton =
  "rounded px-1 text-slate-500 underline-offset-2 hover:underline focus:outline-none focus-visible:ring-2 focus-visible:ring-blue-500";

export function MessageItem({
  message: m,
  now,
  onDelete,
  quoted,
  onReact,
  onReply,
  onEdit,
  onDeleteForEveryone,
}: Props) {
  const disappears = disappearsText(m, now);
  const servers = m.mine ? serversText(m.delivery) : null;
  const [picking, setPicking] = useState(false);
  const [editing, setEditing] = useState(false);
  const [draft, setDraft] = useState(m.text);
  const [editError, setEditError] = useState<string | null>(null);

  async function saveEdit(e: FormEvent) {
    e.preventDefault();
    const text = draft.trim();
    if (!onEdit || !text) return;
    setEditError(null);
    try {
      await onEdit(m.seq, text);
      setEditing(false);
    } catch (err) {
      setEditError(plainWords(err));
    }
  }

  return (
    <article
      aria-label={`Message from ${m.mine ? "you" : m.sender}`}
      className={`group flex max-w-full flex-col ${m.mine ? "items-end" : "items-start"}`}
    >
      <div
        className={`max-w-[85%] rounded-lg px-3 py-2 sm:max-w-[70%] ${
          m.mine ? "bg-blue-600 text-white" : "bg-slate-100 dark:bg-slate-800"
        }`}
      >
        {m.reply_to != null && (
          <blockquote
            aria-label="In reply to"
            className={`mb-1 border-l-4 pl-2 text-sm ${
              m.mine ? "border-blue-300 text-blue-50" : "border-slate-400 text-slate-600 dark:text-slate-300"
            }`}
          >
            {quoted ? (
              <>
                <span className="font-medium">{quoted.sender}</span>
                <span className="line-clamp-2 whitespace-pre-wrap break-words">{quoted.text}</span>
              </>
            ) : (
              <span className="italic">Message no longer here</span>
            )}
          </blockquote>
        )}
        {editing ? (
          <form onSubmit={(e) => void saveEdit(e)} className="flex flex-col gap-1">
            <label htmlFor={`edit-${m.seq}`} className="sr-only">
              New text
            </label>
            <textarea
              id={`edit-${m.seq}`}
              className="input min-w-[12rem] text-slate-900"
              value={draft}
              onChange={(e) => setDraft(e.target.value)}
              autoFocus
            />
            {editError && (
              <p role="alert" className="text-xs">
                Not edited — {editError}
              </p>
            )}
            <div className="flex gap-2">
              <button type="submit" className="btn" disabled={!draft.trim()}>
                Save
              </button>
              <button
                type="button"
                className="btn"
                onClick={() => {
                  setEditing(false);
                  setDraft(m.text);
                  setEditError(null);
                }}
              >
                Cancel
              </button>
            </div>
          </form>
        ) : (
          <p className="whitespace-pre-wrap break-words">{m.text}</p>
        )}
      </div>
      {m.reactions.length > 0 && (
        <ul aria-label="Reactions" className="mt-1 flex flex-wrap gap-1">
          {m.reactions.map((r) => (
            <li key={r.emoji}>
              <button
                type="button"
                className={`rounded-full border px-2 text-sm ${
                  r.mine ? "border-blue-500 bg-blue-50 dark:bg-blue-950" : "border-slate-300 dark:border-slate-600"
                }`}
                aria-pressed={r.mine}
                aria-label={`${r.emoji} ${r.count}`}
                title={r.users.join(", ")}
                disabled={!onReact}
                onClick={() => onReact?.(m.seq, r.emoji)}
              >
                {r.emoji} {r.count}
              </button>
            </li>
          ))}
        </ul>
      )}
      {picking && onReact && (
        <div role="group" aria-label="Pick a reaction" className="mt-1 flex gap-1">
          {QUICK_REACTIONS.map((emoji) => (
            <button
              key={emoji}
              type="button"
              className="rounded px-1 text-lg hover:bg-slate-200 dark:hover:bg-slate-700"
              aria-label={`React with ${emoji}`}
              onClick={() => {
                setPicking(false);
                onReact(m.seq, emoji);
              }}
            >
              {emoji}
            </button>
          ))}
        </div>
      )}
      <div className="mt-0.5 flex flex-wrap items-center gap-x-2 text-xs text-slate-600 dark:text-slate-400">
        <span>{m.sender}</span>
        <time dateTime={m.sent_at} title={new Date(m.sent_at).toLocaleString()}>
          {timeText(m.sent_at)}
        </time>
        {m.edited_at && (
          <span title={`Edited ${new Date(m.edited_at).toLocaleString()}`}>(edited)</span>
        )}
        {m.mine && (
          <span title={deliveryTitle(m.delivery)}>
            {deliveryText(m.delivery)}
          </span>
        )}
        {servers && (
          <span title={deliveryTitle(m.delivery)}>
            {`· ${servers}`}
          </span>
        )}
        {disappears && <span>{disappears}</span>}
        {onReact && (
          <button
            type="button"
            className={linkButton}
            aria-expanded={picking}
            onClick={() => setPicking((p) => !p)}
            aria-label="React"
          >
            React
          </button>
        )}
        {onReply && (
          <button type="button" className={linkButton} onClick={() => onReply(m)} aria-label="Reply">
            Reply
          </button>
        )}
        {m.mine && onEdit && !editing && (
          <button
            type="button"
            className={linkButton}
            onClick={() => {
              setDraft(m.text);
              setEditing(true);
            }}
            aria-label="Edit message"
          >
            Edit
          </button>
        )}
        {m.mine && onDeleteForEveryone && (
          <button
            type="button"
            className={linkButton}
            onClick={() => onDeleteForEveryone(m.seq)}
            aria-label="Delete for everyone"
          >
            Delete for everyone
          </button>
        )}
        <button
          type="button"
          className={linkButton}
          onClick={() => onDelete(m.seq)}
          aria-label="Delete message"
        >
          Delete
        </button>
      </div>
    </article>
  );
}

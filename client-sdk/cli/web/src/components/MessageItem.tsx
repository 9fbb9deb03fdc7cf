import { useEffect, useState } from "react";
import type { FormEvent } from "react";
import { api, plainWords } from "../api";
import type { Attachment, Message } from "../api";
import { deliveryText, deliveryTitle, disappearsText, serversText, timeText } from "../format";

/** The reactions offered in one click. */
export const QUICK_REACTIONS = ["👍", "❤️", "😂", "🎉", "😮", "😢"];

interface Props {
  groupId?: string;
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

const PREVIEWABLE = ["image/png", "image/jpeg", "image/gif", "image/webp"];

function sizeText(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

/** A message's file: an image preview, or a button that saves it. */
function FileView({ groupId, seq, file }: { groupId: string; seq: number; file: Attachment }) {
  const preview = PREVIEWABLE.includes(file.media_type);
  const [url, setUrl] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    if (!preview) return;
    let revoked = false;
    let made: string | null = null;
    api
      .file(groupId, seq)
      .then((blob) => {
        if (revoked) return;
        made = URL.createObjectURL(blob);
        setUrl(made);
      })
      .catch((e) => setError(plainWords(e)));
    return () => {
      revoked = true;
      if (made) URL.revokeObjectURL(made);
    };
  }, [groupId, seq, preview]);

  async function save() {
    try {
      const blob = await api.file(groupId, seq);
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = file.name;
      link.click();
      setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
    } catch (e) {
      setError(plainWords(e));
    }
  }

  return (
    <div className="mb-1 flex flex-col gap-1">
      {preview && url && (
        <img src={url} alt={`Preview of ${file.name}`} className="max-h-64 max-w-full rounded" />
      )}
      <button type="button" className="text-left underline underline-offset-2" onClick={() => void save()}>
        {`${file.name} (${sizeText(file.size)})`}
      </button>
      {error && <span role="alert" className="text-xs">{`File not available: ${error}`}</span>}
    </div>
  );
}

const linkButton =
  "rounded px-1 text-slate-500 underline-offset-2 hover:underline focus:outline-none focus-visible:ring-2 focus-visible:ring-blue-500";

export function MessageItem({
  groupId,
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
        {m.attachment && groupId && <FileView groupId={groupId} seq={m.seq} file={m.attachment} />}
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
          m.text && <p className="whitespace-pre-wrap break-words">{m.text}</p>
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

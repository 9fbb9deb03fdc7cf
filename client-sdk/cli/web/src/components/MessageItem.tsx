import { useEffect, useState } from "react";
import { api, plainWords } from "../api";
import type { Attachment, Message } from "../api";
import { deliveryText, deliveryTitle, disappearsText, serversText, timeText } from "../format";

interface Props {
  groupId?: string;
  message: Message;
  now: number;
  onDelete: (seq: number) => void;
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

export function MessageItem({ groupId, message: m, now, onDelete }: Props) {
  const disappears = disappearsText(m, now);
  const servers = m.mine ? serversText(m.delivery) : null;
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
        {m.attachment && groupId && <FileView groupId={groupId} seq={m.seq} file={m.attachment} />}
        {m.text && <p className="whitespace-pre-wrap break-words">{m.text}</p>}
      </div>
      <div className="mt-0.5 flex flex-wrap items-center gap-x-2 text-xs text-slate-600 dark:text-slate-400">
        <span>{m.sender}</span>
        <time dateTime={m.sent_at} title={new Date(m.sent_at).toLocaleString()}>
          {timeText(m.sent_at)}
        </time>
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
        <button
          type="button"
          className="rounded px-1 text-slate-500 underline-offset-2 hover:underline focus:outline-none focus-visible:ring-2 focus-visible:ring-blue-500"
          onClick={() => onDelete(m.seq)}
          aria-label="Delete message"
        >
          Delete
        </button>
      </div>
    </article>
  );
}

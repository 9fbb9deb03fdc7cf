import type { Message } from "../api";
import { deliveryText, deliveryTitle, disappearsText, serversText, timeText } from "../format";

interface Props {
  message: Message;
  now: number;
  onDelete: (seq: number) => void;
}

export function MessageItem({ message: m, now, onDelete }: Props) {
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
        <p className="whitespace-pre-wrap break-words">{m.text}</p>
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

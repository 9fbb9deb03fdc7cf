import type { KeyboardEvent } from "react";
import type { Conversation } from "../api";
import { conversationTitle, timeText } from "../format";

interface Props {
  conversations: Conversation[];
  me?: string;
  selected: string | null;
  onSelect: (group_id: string) => void;
  loading?: boolean;
}

export function conversationLabel(c: Conversation, me?: string): string {
  const parts = [conversationTitle(c, me)];
  if (c.unread > 0) parts.push(`${c.unread} unread`);
  if (c.last_message) {
    parts.push(`last message${c.last_message.mine ? " (yours)" : ""}: ${c.last_message.text}`);
  } else {
    parts.push("no messages yet");
  }
  if (!c.member) parts.push("left");
  return parts.join(", ");
}

export function ConversationList({ conversations, me, selected, onSelect, loading }: Props) {
  function onKeyDown(e: KeyboardEvent<HTMLUListElement>) {
    if (!["ArrowDown", "ArrowUp", "Home", "End"].includes(e.key)) return;
    const buttons = Array.from(e.currentTarget.querySelectorAll<HTMLButtonElement>("button[data-conv]"));
    if (buttons.length === 0) return;
    const i = buttons.indexOf(document.activeElement as HTMLButtonElement);
    let j = i;
    if (e.key === "ArrowDown") j = Math.min(buttons.length - 1, i + 1);
    if (e.key === "ArrowUp") j = Math.max(0, i - 1);
    if (e.key === "Home") j = 0;
    if (e.key === "End") j = buttons.length - 1;
    e.preventDefault();
    buttons[j]?.focus();
  }

  if (loading) {
    return <p className="p-3 text-sm text-slate-600 dark:text-slate-300">Loading conversations…</p>;
  }
  if (conversations.length === 0) {
    return (
      <p className="p-3 text-sm text-slate-600 dark:text-slate-300">
        No conversations yet. Start one with “New conversation”.
      </p>
    );
  }
  return (
    <ul role="list" className="divide-y divide-slate-200 dark:divide-slate-700" onKeyDown={onKeyDown}>
      {conversations.map((c) => {
        const title = conversationTitle(c, me);
        const active = c.group_id === selected;
        return (
          <li key={c.group_id}>
            <button
              type="button"
              data-conv={c.group_id}
              aria-label={conversationLabel(c, me)}
              aria-current={active ? "true" : undefined}
              onClick={() => onSelect(c.group_id)}
              className={`flex w-full items-start gap-2 px-3 py-2 text-left hover:bg-slate-100 focus:outline-none focus-visible:ring-2 focus-visible:ring-inset focus-visible:ring-blue-500 dark:hover:bg-slate-800 ${
                active ? "bg-blue-50 dark:bg-slate-800" : ""
              }`}
            >
              <span className="min-w-0 flex-1">
                <span className="flex items-baseline justify-between gap-2">
                  <span className={`truncate ${c.unread > 0 ? "font-semibold" : ""}`}>{title}</span>
                  {c.last_message && (
                    <span className="shrink-0 text-xs text-slate-500">{timeText(c.last_message.sent_at)}</span>
                  )}
                </span>
                <span className="block truncate text-sm text-slate-600 dark:text-slate-400">
                  {c.last_message
                    ? `${c.last_message.mine ? "You: " : ""}${c.last_message.text}`
                    : c.member
                      ? "No messages yet"
                      : "You left"}
                </span>
              </span>
              {c.unread > 0 && (
                <span
                  aria-hidden="true"
                  className="mt-1 shrink-0 rounded-full bg-blue-600 px-2 text-xs font-semibold text-white"
                >
                  {c.unread}
                </span>
              )}
            </button>
          </li>
        );
      })}
    </ul>
  );
}

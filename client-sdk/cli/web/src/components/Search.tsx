import { useEffect, useRef, useState } from "react";
import type { FormEvent } from "react";
import { api, plainWords } from "../api";
import type { SearchHit } from "../api";
import { useApp } from "../context";
import { conversationTitle, timeText } from "../format";
import { ErrorNote, Spinner } from "./Dialog";

/** The search box and, while it has a query, its results in place of the list. */
export function SearchBox({ query, onQuery }: { query: string; onQuery: (q: string) => void }) {
  return (
    <form role="search" className="p-2" onSubmit={(e: FormEvent) => e.preventDefault()}>
      <input
        type="search"
        className="input"
        aria-label="Search messages"
        placeholder="Search messages"
        value={query}
        onChange={(e) => onQuery(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === "Escape") onQuery("");
        }}
      />
    </form>
  );
}

export function SearchResults({ query, onOpen }: { query: string; onOpen: (group_id: string) => void }) {
  const { state, me } = useApp();
  const [hits, setHits] = useState<SearchHit[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const seq = useRef(0);

  async function search(q: string) {
    const mine = ++seq.current;
    setError(null);
    setHits(null);
    try {
      const r = await api.search(q);
      if (mine === seq.current) setHits(r);
    } catch (e) {
      if (mine === seq.current) setError(plainWords(e));
    }
  }

  useEffect(() => {
    const t = setTimeout(() => void search(query.trim()), 250);
    return () => clearTimeout(t);
  }, [query]);

  const titleOf = (gid: string) => {
    const c = state.conversations.find((x) => x.group_id === gid);
    return c ? conversationTitle(c, me) : gid;
  };

  return (
    <section aria-label="Search results" className="p-2">
      {!hits && !error && <Spinner label="Searching…" />}
      {error && <ErrorNote message={error} onRetry={() => void search(query.trim())} />}
      {hits && hits.length === 0 && <p className="text-sm text-slate-600 dark:text-slate-400">No messages match.</p>}
      {hits && hits.length > 0 && (
        <ul role="list" className="space-y-1">
          {hits.map((h) => (
            <li key={`${h.group_id}-${h.message.seq}`}>
              <button
                type="button"
                className="w-full rounded-md px-2 py-1 text-left hover:bg-slate-100 focus:outline-none focus-visible:ring-2 focus-visible:ring-blue-500 dark:hover:bg-slate-800"
                onClick={() => onOpen(h.group_id)}
              >
                <span className="block truncate text-xs text-slate-600 dark:text-slate-400">
                  {titleOf(h.group_id)} · {h.message.sender} · {timeText(h.message.sent_at)}
                </span>
                <span className="block truncate text-sm">{h.message.text}</span>
              </button>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

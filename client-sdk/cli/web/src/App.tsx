import { useCallback, useEffect, useMemo, useReducer, useRef, useState } from "react";
import { ApiError, EventStream, api, initSecret, plainWords } from "./api";
import type { ServerEvent, SessionStatus } from "./api";
import { AppContext, useApp } from "./context";
import type { AppCtx, DialogState, Failure } from "./context";
import { initialState, reducer } from "./state";
import { ConversationList } from "./components/ConversationList";
import { ConversationView } from "./components/ConversationView";
import { ErrorNote, Spinner } from "./components/Dialog";
import {
  AddPeopleDialog,
  ConfirmDeleteDialog,
  DevicesDialog,
  MembersDialog,
  NewConversationDialog,
} from "./components/Dialogs";
import { GroupSettingsDialog } from "./components/GroupSettings";
import { ProfileDialog } from "./components/Profile";
import { SecondFactorDialog } from "./components/SecondFactor";
import { BackupDialog, RestoreDialog } from "./components/Backup";
import { SearchBox, SearchResults } from "./components/Search";
import { SignIn, Unlock } from "./components/SignIn";

export function NoSecret() {
  return (
    <main className="mx-auto max-w-lg p-6">
      <h1 className="mb-3 text-2xl font-bold">Open Parley from its link</h1>
      <p className="mb-2">
        This page needs the one-time link that <code>parley ui</code> printed when it started, like{" "}
        <code className="break-all">http://127.0.0.1:PORT/#secret=…</code>
      </p>
      <p>
        Open that exact URL in this browser. If you closed the terminal, start <code>parley ui</code>{" "}
        again and use the new link.
      </p>
    </main>
  );
}

export default function App() {
  const [secret] = useState(() => initSecret());
  if (!secret) return <NoSecret />;
  return <Connected />;
}

function Connected() {
  const [state, dispatch] = useReducer(reducer, initialState);
  const [dialog, setDialog] = useState<DialogState | null>(null);
  const [failure, setFailure] = useState<Failure | null>(null);
  const [sessionError, setSessionError] = useState<ApiError | null>(null);
  const [query, setQuery] = useState("");
  const selectedRef = useRef<string | null>(null);
  selectedRef.current = state.selected;
  const signedIn = !!state.session?.signed_in;
  const me = state.session?.user_id;

  const loadSession = useCallback(async () => {
    setSessionError(null);
    try {
      dispatch({ type: "session", session: await api.session() });
    } catch (e) {
      setSessionError(e instanceof ApiError ? e : new ApiError("server_error", plainWords(e), 0));
    }
  }, []);

  const reloadConversations = useCallback(async () => {
    try {
      dispatch({ type: "conversations", conversations: await api.conversations() });
    } catch (e) {
      if (e instanceof ApiError && e.code === "not_signed_in") {
        // Signed out, or the store is locked: the session says which.
        void loadSession();
        return;
      }
      setFailure({ label: "Load conversations", message: plainWords(e), retry: () => void reloadConversations() });
    }
  }, [loadSession]);

  const run = useCallback(async (label: string, fn: () => Promise<void>): Promise<boolean> => {
    try {
      await fn();
      setFailure((f) => (f && f.label === label ? null : f));
      return true;
    } catch (e) {
      if (e instanceof ApiError && e.code === "not_signed_in") void loadSession();
      setFailure({ label, message: plainWords(e), retry: () => void run(label, fn) });
      return false;
    }
  }, [loadSession]);

  useEffect(() => {
    void loadSession();
  }, [loadSession]);

  useEffect(() => {
    if (signedIn) void reloadConversations();
  }, [signedIn, reloadConversations]);

  // The event socket: open for the whole life of the page, reconnecting with backoff.
  useEffect(() => {
    const stream = new EventStream(
      (event: ServerEvent) => {
        dispatch({ type: "event", event, now: Date.now() });
      },
      (s, reconnected) => {
        dispatch({ type: "socket", state: s });
        if (reconnected) {
          // Events were missed while disconnected: fetch the current state again.
          void loadSession();
          void reloadConversations();
          const sel = selectedRef.current;
          if (sel)
            api
              .messages(sel)
              .then((ms) => dispatch({ type: "messages", group_id: sel, messages: ms }))
              .catch(() => undefined);
        }
      },
    );
    stream.start();
    return () => stream.stop();
  }, [loadSession, reloadConversations]);

  // Presence: away while this tab is hidden, online when it is shown again.
  useEffect(() => {
    if (!signedIn) return;
    const onVis = () => {
      api.presence(document.visibilityState === "hidden" ? "away" : "online").catch(() => undefined);
    };
    document.addEventListener("visibilitychange", onVis);
    return () => document.removeEventListener("visibilitychange", onVis);
  }, [signedIn]);

  // Typing indicators go away 6 s after their last refresh.
  const anyTyping = Object.values(state.typing).some((g) => Object.keys(g).length > 0);
  useEffect(() => {
    if (!anyTyping) return;
    const t = setInterval(() => dispatch({ type: "typing_expire", now: Date.now() }), 1000);
    return () => clearInterval(t);
  }, [anyTyping]);

  const ctx: AppCtx = useMemo(
    () => ({
      state,
      dispatch,
      me,
      dialog,
      openDialog: setDialog,
      failure,
      run,
      clearFailure: () => setFailure(null),
      reloadConversations,
    }),
    [state, me, dialog, failure, run, reloadConversations],
  );

  function onSignedIn(s: SessionStatus, mode?: "login" | "register") {
    if (s && typeof s.signed_in === "boolean") dispatch({ type: "session", session: s });
    else void loadSession();
    // A new device of an existing account: offer to restore its history from a backup.
    if (mode === "login") setDialog({ kind: "restore" });
  }

  const banner = (
    <>
      {state.socket === "reconnecting" && (
        <div role="status" className="bg-amber-100 px-3 py-1 text-sm text-amber-900 dark:bg-amber-900 dark:text-amber-100">
          Reconnecting to Parley on this computer…
        </div>
      )}
      {state.homeserver.state === "unreachable" && (
        <div role="status" className="bg-amber-100 px-3 py-1 text-sm text-amber-900 dark:bg-amber-900 dark:text-amber-100">
          Can't reach your homeserver. Check your connection; messages will go out when it is back.
        </div>
      )}
      {state.warnings.map((w, i) => (
        <div
          key={i}
          role="alert"
          className="flex items-start gap-2 bg-red-100 px-3 py-1 text-sm whitespace-pre-wrap text-red-900 dark:bg-red-950 dark:text-red-100"
        >
          <span className="flex-1">{w}</span>
          <button type="button" className="btn" onClick={() => dispatch({ type: "dismiss_warning", index: i })}>
            Dismiss
          </button>
        </div>
      ))}
      {state.sync.state === "syncing" && signedIn && (
        <div className="bg-blue-50 px-3 py-1 dark:bg-slate-800">
          <Spinner label={`Syncing${state.sync.pending ? ` (${state.sync.pending} left)` : ""}…`} />
        </div>
      )}
    </>
  );

  let body: JSX.Element;
  if (!state.session) {
    body = sessionError ? (
      sessionError.code === "bad_secret" ? (
        <NoSecret />
      ) : (
        <main className="mx-auto max-w-lg p-6">
          <h1 className="mb-3 text-2xl font-bold">Parley</h1>
          <ErrorNote message={plainWords(sessionError)} onRetry={() => void loadSession()} />
        </main>
      )
    ) : (
      <main className="p-6">
        <Spinner label="Connecting to Parley…" />
      </main>
    );
  } else if (state.session.locked) {
    body = <Unlock onUnlocked={onSignedIn} />;
  } else if (!state.session.signed_in) {
    body = <SignIn onSignedIn={onSignedIn} sync={state.sync} defaultServer={state.session.server ?? ""} />;
  } else {
    body = <Main query={query} setQuery={setQuery} />;
  }

  return (
    <AppContext.Provider value={ctx}>
      <div className="flex h-screen flex-col">
        {banner}
        <div className="min-h-0 flex-1">{body}</div>
      </div>
    </AppContext.Provider>
  );
}

function Main({ query, setQuery }: { query: string; setQuery: (q: string) => void }) {
  const { state, dispatch, me, dialog, openDialog, failure, clearFailure, run, reloadConversations } = useApp();
  const selected = state.conversations.find((c) => c.group_id === state.selected) ?? null;
  const select = (gid: string | null) => dispatch({ type: "select", group_id: gid });

  return (
    <>
      {/* While a dialog is open the rest is hidden from assistive technology (modal). */}
      <div className="flex h-full min-h-0" aria-hidden={dialog ? true : undefined}>
        <nav
          aria-label="Conversations"
          className={`min-h-0 w-full flex-col border-r border-slate-200 sm:flex sm:w-80 sm:shrink-0 dark:border-slate-700 ${
            selected ? "hidden" : "flex"
          }`}
        >
          <div className="flex items-center justify-between gap-2 border-b border-slate-200 p-2 dark:border-slate-700">
            <span className="truncate text-sm font-semibold" title={me}>
              {me}
            </span>
            <div className="flex gap-1">
              <button type="button" className="btn" onClick={() => openDialog({ kind: "devices" })}>
                Devices
              </button>
              <button type="button" className="btn" onClick={() => openDialog({ kind: "second_factor" })}>
                Security
              </button>
              <button type="button" className="btn" onClick={() => openDialog({ kind: "backup" })}>
                Backup
              </button>
              <button
                type="button"
                className="btn"
                onClick={() =>
                  void run("Sign out", async () => {
                    await api.logout();
                    dispatch({ type: "session", session: { signed_in: false, locked: false } });
                  })
                }
              >
                Sign out
              </button>
            </div>
          </div>
          <div className="flex items-center gap-2 px-2 pt-2">
            <button type="button" className="btn-primary w-full" onClick={() => openDialog({ kind: "new" })}>
              New conversation
            </button>
          </div>
          <SearchBox query={query} onQuery={setQuery} />
          <div className="min-h-0 flex-1 overflow-y-auto">
            {query.trim() ? (
              <SearchResults
                query={query}
                onOpen={(gid) => {
                  select(gid);
                }}
              />
            ) : (
              <ConversationList
                conversations={state.conversations}
                me={me}
                selected={state.selected}
                onSelect={select}
                loading={!state.conversationsLoaded}
              />
            )}
          </div>
        </nav>
        <main className={`min-h-0 min-w-0 flex-1 flex-col sm:flex ${selected ? "flex" : "hidden"}`}>
          {failure && (
            <div className="px-2">
              <ErrorNote
                message={`${failure.label} failed: ${failure.message}`}
                onRetry={() => {
                  clearFailure();
                  failure.retry?.();
                }}
              />
              <button type="button" className="mt-1 text-xs underline" onClick={clearFailure}>
                Dismiss
              </button>
            </div>
          )}
          {selected ? (
            <ConversationView conversation={selected} onBack={() => select(null)} />
          ) : (
            <div className="flex flex-1 items-center justify-center p-6 text-slate-500">
              Pick a conversation, or start a new one.
            </div>
          )}
        </main>
      </div>
      {dialog?.kind === "new" && <NewConversationDialog />}
      {dialog?.kind === "add" && <AddPeopleDialog group_id={dialog.group_id} />}
      {dialog?.kind === "members" &&
        (() => {
          const c = state.conversations.find((x) => x.group_id === dialog.group_id);
          return c ? <MembersDialog conversation={c} /> : null;
        })()}
      {dialog?.kind === "settings" &&
        (() => {
          const c = state.conversations.find((x) => x.group_id === dialog.group_id);
          return c ? <GroupSettingsDialog conversation={c} /> : null;
        })()}
      {dialog?.kind === "delete" && <ConfirmDeleteDialog group_id={dialog.group_id} />}
      {dialog?.kind === "devices" && <DevicesDialog />}
      {dialog?.kind === "second_factor" && <SecondFactorDialog onClose={() => openDialog(null)} />}
      {dialog?.kind === "backup" && <BackupDialog onClose={() => openDialog(null)} />}
      {dialog?.kind === "restore" && (
        <RestoreDialog
          onClose={() => openDialog(null)}
          progress={state.restore}
          onRestored={() => void reloadConversations()}
        />
      )}
      {dialog?.kind === "profile" && (
        <ProfileDialog
          user_id={dialog.user_id}
          onClose={() => openDialog(null)}
          onChanged={() => void reloadConversations()}
        />
      )}
    </>
  );
}

import type {
  Conversation,
  Delivery,
  DeviceRef,
  Message,
  Presence,
  ServerEvent,
  ServerPosition,
  SessionStatus,
  SocketState,
} from "./api";

export interface SyncState {
  state: "syncing" | "idle";
  pending?: number;
}

export interface State {
  session: SessionStatus | null; // null while loading
  conversations: Conversation[];
  conversationsLoaded: boolean;
  messages: Record<string, Message[]>;
  selected: string | null;
  /** group_id → user_id → time the indicator goes away (ms). */
  typing: Record<string, Record<string, number>>;
  presence: Record<string, Presence>;
  socket: SocketState;
  homeserver: { state: "online" | "unreachable"; message?: string };
  sync: SyncState;
  /** Security warnings to show until dismissed (refused devices). */
  warnings: string[];
  /** Chunks of a key backup restored so far, while a restore runs. */
  restore: { done: number; total: number } | null;
}

export const initialState: State = {
  session: null,
  conversations: [],
  conversationsLoaded: false,
  messages: {},
  selected: null,
  typing: {},
  presence: {},
  socket: "connecting",
  homeserver: { state: "online" },
  sync: { state: "idle" },
  warnings: [],
  restore: null,
};

export type Action =
  | { type: "session"; session: SessionStatus }
  | { type: "conversations"; conversations: Conversation[] }
  | { type: "conversation"; conversation: Conversation }
  | { type: "conversation_removed"; group_id: string }
  | { type: "select"; group_id: string | null }
  | { type: "messages"; group_id: string; messages: Message[] }
  | { type: "message"; group_id: string; message: Message }
  | { type: "message_deleted"; group_id: string; seq: number }
  | { type: "read"; group_id: string }
  | { type: "socket"; state: SocketState }
  | { type: "typing_expire"; now: number }
  | { type: "dismiss_warning"; index: number }
  | { type: "event"; event: ServerEvent; now: number };

const TYPING_MS = 6000;

function lastMsg(ms: Message[]): Message | null {
  return ms.length ? ms[ms.length - 1] : null;
}

function sortConversations(cs: Conversation[]): Conversation[] {
  const key = (c: Conversation) => (c.last_message ? Date.parse(c.last_message.sent_at) || 0 : 0);
  return [...cs].sort((a, b) => key(b) - key(a));
}

function upsertConversation(cs: Conversation[], c: Conversation): Conversation[] {
  const i = cs.findIndex((x) => x.group_id === c.group_id);
  if (i < 0) return sortConversations([c, ...cs]);
  const next = [...cs];
  next[i] = c;
  return sortConversations(next);
}

function insertMessage(list: Message[], m: Message): Message[] {
  const i = list.findIndex((x) => x.seq === m.seq);
  if (i >= 0) {
    const next = [...list];
    next[i] = m;
    return next;
  }
  return [...list, m].sort((a, b) => a.seq - b.seq);
}

function applyDelivered(d: Delivery, to: DeviceRef): Delivery {
  const list = [...d.delivered_to];
  if (!list.some((x) => x.user_id === to.user_id && x.device_id === to.device_id)) list.push(to);
  const state = d.devices > 0 && list.length >= d.devices ? "delivered" : d.state;
  return { ...d, delivered_to: list, state };
}

/** An own message's per-server state from the servers' positions. */
export function withServers(m: Message, servers: ServerPosition[]): Message {
  if (!m.mine) return m;
  const list = servers.map((s) => ({ server: s.server, delivered: m.seq <= s.delivered_up_to }));
  return { ...m, delivery: { ...m.delivery, servers: list } };
}

function mapConv(s: State, id: string, f: (c: Conversation) => Conversation): Conversation[] {
  return s.conversations.map((c) => (c.group_id === id ? f(c) : c));
}

function onEvent(s: State, e: ServerEvent, now: number): State {
  switch (e.event) {
    case "message": {
      const { group_id, message } = e;
      const loaded = s.messages[group_id];
      const messages = loaded ? { ...s.messages, [group_id]: insertMessage(loaded, message) } : s.messages;
      const isNew = !loaded || !loaded.some((m) => m.seq === message.seq);
      const viewing = s.selected === group_id;
      const conversations = sortConversations(
        mapConv(s, group_id, (c) => ({
          ...c,
          last_message:
            !c.last_message || c.last_message.seq <= message.seq ? message : c.last_message,
          unread: !message.mine && isNew && !viewing ? c.unread + 1 : c.unread,
        })),
      );
      // A message ends that sender's typing indicator.
      const typing = { ...s.typing };
      if (typing[group_id]?.[message.sender]) {
        const g = { ...typing[group_id] };
        delete g[message.sender];
        typing[group_id] = g;
      }
      return { ...s, messages, conversations, typing };
    }
    case "message_deleted": {
      return reducer(s, { type: "message_deleted", group_id: e.group_id, seq: e.seq });
    }
    case "delivered": {
      const list = s.messages[e.group_id];
      const messages = list
        ? {
            ...s.messages,
            [e.group_id]: list.map((m) =>
              m.seq === e.seq ? { ...m, delivery: applyDelivered(m.delivery, e.to) } : m,
            ),
          }
        : s.messages;
      const conversations = mapConv(s, e.group_id, (c) =>
        c.last_message && c.last_message.seq === e.seq
          ? { ...c, last_message: { ...c.last_message, delivery: applyDelivered(c.last_message.delivery, e.to) } }
          : c,
      );
      return { ...s, messages, conversations };
    }
    case "delivery": {
      const list = s.messages[e.group_id];
      const messages = list
        ? { ...s.messages, [e.group_id]: list.map((m) => withServers(m, e.servers)) }
        : s.messages;
      const conversations = mapConv(s, e.group_id, (c) =>
        c.last_message ? { ...c, last_message: withServers(c.last_message, e.servers) } : c,
      );
      return { ...s, messages, conversations };
    }
    case "conversation":
      return { ...s, conversations: upsertConversation(s.conversations, e.conversation) };
    case "typing": {
      const g = { ...(s.typing[e.group_id] || {}) };
      if (e.typing) g[e.user_id] = now + TYPING_MS;
      else delete g[e.user_id];
      return { ...s, typing: { ...s.typing, [e.group_id]: g } };
    }
    case "presence":
      return { ...s, presence: { ...s.presence, [e.user_id]: e.presence } };
    case "sync":
      return { ...s, sync: { state: e.state, pending: e.pending } };
    case "restore":
      return { ...s, restore: { done: e.done, total: e.total } };
    case "connection":
      return { ...s, homeserver: { state: e.state, message: e.message } };
    case "leaf_refused":
    case "action_refused":
    case "security_alert":
      return { ...s, warnings: [...s.warnings, e.message] };
    case "message_changed": {
      // A reaction or an edit: replaces the message where it is shown; never unread.
      const { group_id, message } = e;
      const loaded = s.messages[group_id];
      const messages = loaded
        ? { ...s.messages, [group_id]: loaded.map((m) => (m.seq === message.seq ? message : m)) }
        : s.messages;
      const conversations = s.conversations.map((c) =>
        c.group_id === group_id && c.last_message?.seq === message.seq ? { ...c, last_message: message } : c,
      );
      return { ...s, messages, conversations };
    }
    case "verified_contact_changed": {
      // Mark the user's member entries as changed until the conversation is refreshed.
      const conversations = s.conversations.map((c) =>
        c.members.some((m) => m.user_id === e.user_id)
          ? {
              ...c,
              members: c.members.map((m) =>
                m.user_id === e.user_id && m.verification === "verified" ? { ...m, verification: "changed" as const } : m,
              ),
              encryption: {
                ...c.encryption,
                all_verified: false,
                changed_contacts: c.encryption.changed_contacts.includes(e.user_id)
                  ? c.encryption.changed_contacts
                  : [...c.encryption.changed_contacts, e.user_id],
              },
            }
          : c,
      );
      return { ...s, conversations };
    }
    default:
      return s;
  }
}

export function reducer(s: State, a: Action): State {
  switch (a.type) {
    case "session":
      if (!a.session.signed_in) {
        return { ...initialState, session: a.session, socket: s.socket, homeserver: s.homeserver, sync: s.sync };
      }
      return { ...s, session: a.session };
    case "conversations":
      return { ...s, conversations: sortConversations(a.conversations), conversationsLoaded: true };
    case "conversation":
      return { ...s, conversations: upsertConversation(s.conversations, a.conversation) };
    case "conversation_removed": {
      const messages = { ...s.messages };
      delete messages[a.group_id];
      return {
        ...s,
        conversations: s.conversations.filter((c) => c.group_id !== a.group_id),
        messages,
        selected: s.selected === a.group_id ? null : s.selected,
      };
    }
    case "select":
      return { ...s, selected: a.group_id };
    case "messages": {
      const sorted = [...a.messages].sort((x, y) => x.seq - y.seq);
      return { ...s, messages: { ...s.messages, [a.group_id]: sorted } };
    }
    case "message": {
      const list = s.messages[a.group_id] || [];
      const next = insertMessage(list, a.message);
      return {
        ...s,
        messages: { ...s.messages, [a.group_id]: next },
        conversations: sortConversations(
          mapConv(s, a.group_id, (c) => ({ ...c, last_message: lastMsg(next) ?? c.last_message })),
        ),
      };
    }
    case "message_deleted": {
      const list = s.messages[a.group_id];
      const next = list ? list.filter((m) => m.seq !== a.seq) : list;
      return {
        ...s,
        messages: next ? { ...s.messages, [a.group_id]: next } : s.messages,
        conversations: mapConv(s, a.group_id, (c) =>
          c.last_message && c.last_message.seq === a.seq
            ? { ...c, last_message: next ? lastMsg(next) : null }
            : c,
        ),
      };
    }
    case "read":
      return { ...s, conversations: mapConv(s, a.group_id, (c) => ({ ...c, unread: 0 })) };
    case "socket":
      return { ...s, socket: a.state };
    case "dismiss_warning":
      return { ...s, warnings: s.warnings.filter((_, i) => i !== a.index) };
    case "typing_expire": {
      let changed = false;
      const typing: State["typing"] = {};
      for (const [g, users] of Object.entries(s.typing)) {
        const keep: Record<string, number> = {};
        for (const [u, until] of Object.entries(users)) {
          if (until > a.now) keep[u] = until;
          else changed = true;
        }
        typing[g] = keep;
      }
      return changed ? { ...s, typing } : s;
    }
    case "event":
      return onEvent(s, a.event, a.now);
  }
}

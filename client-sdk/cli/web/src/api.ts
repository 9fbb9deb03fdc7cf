// Typed client of the local UI API served by `parley ui` (specs/local-ui-api.md).
// The browser only ever talks to the local process, never to the homeserver.

export type Verification = "unverified" | "verified" | "changed";

export interface Session {
  signed_in: boolean;
  /** Assumed extension: the sealed store exists but needs its passphrase. */
  locked?: boolean;
  user_id?: string;
  device_id?: string;
  server?: string;
}

export interface Member {
  user_id: string;
  device_id: string;
  this_device: boolean;
  verification: Verification;
}

export interface DeviceRef {
  user_id: string;
  device_id: string;
}

/** Whether one member server has stored the message (own messages only). */
export interface ServerReceived {
  server: string;
  delivered: boolean;
}

/** How far one member server has stored a conversation (the `delivery` event). */
export interface ServerPosition {
  server: string;
  delivered_up_to: number;
}

export interface Delivery {
  state: "sent" | "delivered";
  delivered_to: DeviceRef[];
  devices: number;
  servers?: ServerReceived[];
}

export interface Message {
  seq: number;
  sender: string;
  sender_device: string;
  mine: boolean;
  sent_at: string;
  text: string;
  expires_at: string | null;
  delivery: Delivery;
}

export interface Encryption {
  protocol: string;
  ciphersuite: string;
  epoch: number;
  all_verified: boolean;
  changed_contacts: string[];
}

export interface Conversation {
  group_id: string;
  member: boolean;
  epoch: number;
  members: Member[];
  unread: number;
  last_message: Message | null;
  timer_secs: number | null;
  encryption: Encryption;
}

export interface ContactDevice {
  device_id: string;
  signature_key: string;
}

export interface Contact {
  user_id: string;
  safety_number: string;
  verification: Verification;
  devices: ContactDevice[];
  added: ContactDevice[] | string[];
  removed: ContactDevice[] | string[];
}

export interface Device {
  device_id: string;
  display_name: string | null;
  this_device: boolean;
  last_seen_at: string | null;
}

export interface SearchHit {
  group_id: string;
  message: Message;
}

export interface SignInRequest {
  server: string;
  username: string;
  password: string;
  passphrase: string;
  ca_pem?: string;
}

export type Presence = "online" | "away";

export type ServerEvent =
  | { event: "message"; group_id: string; message: Message }
  | { event: "message_deleted"; group_id: string; seq: number }
  | { event: "delivered"; group_id: string; seq: number; to: DeviceRef | DeviceRef[]; delivery?: Delivery }
  | { event: "delivery"; group_id: string; servers: ServerPosition[] }
  | { event: "conversation"; conversation: Conversation }
  | { event: "typing"; group_id: string; user_id: string; typing: boolean }
  | { event: "presence"; user_id: string; presence: Presence }
  | { event: "verified_contact_changed"; user_id: string; added: unknown[]; removed: unknown[] }
  | { event: "sync"; state: "syncing" | "idle"; pending?: number }
  | { event: "connection"; state: "online" | "unreachable"; message?: string };

// ---------------------------------------------------------------------------
// Errors

/** Code used when the local process itself cannot be reached (fetch failed). */
export const LOCAL_UNREACHABLE = "local_unreachable";

export class ApiError extends Error {
  readonly code: string;
  readonly status: number;
  constructor(code: string, message: string, status: number) {
    super(message);
    this.name = "ApiError";
    this.code = code;
    this.status = status;
  }
}

/** Always these words, whatever the server said. */
const PLAIN_WORDS: Record<string, string> = {
  unreachable: "Can't reach your homeserver. Check your connection and try again.",
  wrong_password: "Wrong username or password. Check them and try again.",
  not_allowed: "You're not allowed to do that.",
  verified_contact_changed:
    "Sending is paused: a verified contact changed devices. Review their safety number.",
  [LOCAL_UNREACHABLE]: "Parley on this computer stopped. Start `parley ui` again.",
  bad_secret: "This page is no longer connected to Parley. Open the URL that `parley ui` printed.",
  bad_origin: "This page isn't allowed to talk to Parley on this computer.",
};

/** Used when the server sent no message of its own. */
const FALLBACK_WORDS: Record<string, string> = {
  not_signed_in: "You're signed out. Sign in again.",
  not_found: "That no longer exists.",
  username_taken: "That username is taken. Pick another one.",
  rate_limited: "Too many attempts. Wait a moment and try again.",
};

/** Turns any error into a sentence meant for people. */
export function plainWords(err: unknown): string {
  if (err instanceof ApiError) {
    // The same code covers the account password and the store passphrase.
    if (err.code === "wrong_password" && /passphrase/i.test(err.message))
      return "Wrong store passphrase. Check it and try again.";
    const known = PLAIN_WORDS[err.code];
    if (known) return known;
    if (err.code === "server_error")
      return err.message ? `Something went wrong: ${err.message}` : "Something went wrong in Parley.";
    if (err.message && !/^http_\d+$/.test(err.code)) return err.message;
    if (err.code === "invalid_input") return "Check what you entered and try again.";
    return FALLBACK_WORDS[err.code] || err.message || "Something went wrong. Try again.";
  }
  if (err instanceof Error && err.message) return err.message;
  return "Something went wrong. Try again.";
}

// ---------------------------------------------------------------------------
// The secret

const SECRET_KEY = "parley.secret";
let secret: string | null = null;

/**
 * Reads `#secret=…` from the address, keeps it in sessionStorage and removes it
 * from the address bar. Falls back to a secret stored earlier in this tab.
 */
export function initSecret(): string | null {
  const hash = window.location.hash.replace(/^#/, "");
  const params = new URLSearchParams(hash);
  const fromHash = params.get("secret");
  if (fromHash) {
    secret = fromHash;
    try {
      sessionStorage.setItem(SECRET_KEY, fromHash);
    } catch {
      /* storage disabled: keep it in memory */
    }
    params.delete("secret");
    const rest = params.toString();
    const url = window.location.pathname + window.location.search + (rest ? `#${rest}` : "");
    window.history.replaceState(window.history.state, "", url);
    return secret;
  }
  try {
    secret = sessionStorage.getItem(SECRET_KEY);
  } catch {
    secret = null;
  }
  return secret;
}

export function getSecret(): string | null {
  return secret;
}

/** For tests. */
export function setSecret(s: string | null): void {
  secret = s;
}

// ---------------------------------------------------------------------------
// Requests

async function send(method: string, path: string, body?: unknown): Promise<Response> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (secret) headers.Authorization = `Bearer ${secret}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
  } catch {
    throw new ApiError(LOCAL_UNREACHABLE, "Parley on this computer stopped.", 0);
  }
  if (!res.ok) {
    let code = `http_${res.status}`;
    let message = res.statusText || "";
    try {
      const data = (await res.json()) as { error?: string; message?: string };
      if (data && typeof data.error === "string") code = data.error;
      if (data && typeof data.message === "string") message = data.message;
    } catch {
      /* not JSON */
    }
    if (res.status === 502 && code === `http_502`) code = "unreachable";
    throw new ApiError(code, message, res.status);
  }
  return res;
}

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await send(method, path, body);
  if (res.status === 204) return {} as T;
  const text = await res.text();
  return (text ? JSON.parse(text) : {}) as T;
}

const enc = encodeURIComponent;
const conv = (id: string) => `/api/conversations/${enc(id)}`;

export interface ExportedFile {
  blob: Blob;
  filename: string;
}

export const api = {
  session: () => request<Session>("GET", "/api/session"),
  login: (b: SignInRequest) => request<Session>("POST", "/api/login", b),
  register: (b: SignInRequest) => request<Session>("POST", "/api/register", b),
  /** Assumed endpoint (not in the document yet): opens the sealed store. */
  unlock: (passphrase: string) => request<Session>("POST", "/api/unlock", { passphrase }),
  logout: () => request<object>("POST", "/api/logout", {}),

  conversations: () => request<Conversation[]>("GET", "/api/conversations"),
  createConversation: (members: string[]) =>
    request<Conversation>("POST", "/api/conversations", { members }),
  conversation: (id: string) => request<Conversation>("GET", conv(id)),
  deleteConversation: (id: string) => request<object>("DELETE", conv(id)),
  addMembers: (id: string, users: string[]) =>
    request<Conversation>("POST", `${conv(id)}/members`, { users }),
  removeMember: (id: string, user: string) =>
    request<Conversation>("DELETE", `${conv(id)}/members/${enc(user)}`),
  leave: (id: string) => request<object>("POST", `${conv(id)}/leave`, {}),
  messages: (id: string, search?: string) =>
    request<Message[]>(
      "GET",
      `${conv(id)}/messages${search ? `?search=${enc(search)}` : ""}`,
    ),
  sendMessage: (id: string, text: string) =>
    request<Message>("POST", `${conv(id)}/messages`, { text }),
  deleteMessage: (id: string, seq: number) =>
    request<object>("DELETE", `${conv(id)}/messages/${seq}`),
  setTimer: (id: string, timer_secs: number | null) =>
    request<Conversation>("PUT", `${conv(id)}/timer`, { timer_secs }),
  markRead: (id: string, up_to: number) =>
    request<object>("POST", `${conv(id)}/read`, { up_to }),
  typing: (id: string, typing: boolean) =>
    request<object>("POST", `${conv(id)}/typing`, { typing }),
  exportConversation: async (id: string, format: "text" | "json" = "text"): Promise<ExportedFile> => {
    const res = await send("GET", `${conv(id)}/export?format=${format}`);
    const cd = res.headers.get("Content-Disposition") || "";
    const m = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(cd);
    const filename = m ? decodeURIComponent(m[1]) : `parley-${id}.${format === "json" ? "json" : "txt"}`;
    return { blob: await res.blob(), filename };
  },
  search: (q: string) => request<SearchHit[]>("GET", `/api/search?q=${enc(q)}`),

  contact: (user: string) => request<Contact>("GET", `/api/contacts/${enc(user)}`),
  verify: (user: string) => request<Contact>("POST", `/api/contacts/${enc(user)}/verify`, {}),
  acknowledge: (user: string) =>
    request<Contact>("POST", `/api/contacts/${enc(user)}/acknowledge`, {}),

  devices: () => request<Device[]>("GET", "/api/devices"),
  deleteDevice: (id: string) => request<object>("DELETE", `/api/devices/${enc(id)}`),
  presence: (p: Presence) => request<object>("POST", "/api/presence", { presence: p }),
};

export type Api = typeof api;

// ---------------------------------------------------------------------------
// Event WebSocket with reconnect

export type SocketState = "connecting" | "open" | "reconnecting";

export function eventsUrl(loc: Location = window.location, s: string | null = secret): string {
  const proto = loc.protocol === "https:" ? "wss:" : "ws:";
  return `${proto}//${loc.host}/api/events?secret=${enc(s ?? "")}`;
}

export class EventStream {
  private ws: WebSocket | null = null;
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private stopped = false;

  constructor(
    private readonly onEvent: (e: ServerEvent) => void,
    private readonly onState: (s: SocketState, reconnected: boolean) => void,
    private readonly url: () => string = () => eventsUrl(),
  ) {}

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close();
    }
    this.ws = null;
  }

  /** Backoff: 0.5 s, 1 s, 2 s, 4 s, 8 s, then 10 s. */
  static delay(attempt: number): number {
    return Math.min(10_000, 500 * 2 ** attempt);
  }

  private connect(): void {
    const wasReconnect = this.attempt > 0;
    this.onState(wasReconnect ? "reconnecting" : "connecting", false);
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.url());
    } catch {
      this.schedule();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      const reconnected = this.attempt > 0;
      this.attempt = 0;
      this.onState("open", reconnected);
    };
    ws.onmessage = (m: MessageEvent) => {
      if (typeof m.data !== "string") return;
      try {
        this.onEvent(JSON.parse(m.data) as ServerEvent);
      } catch {
        /* ignore malformed frames */
      }
    };
    ws.onclose = () => {
      this.ws = null;
      if (!this.stopped) this.schedule();
    };
  }

  private schedule(): void {
    this.onState("reconnecting", false);
    const d = EventStream.delay(this.attempt);
    this.attempt += 1;
    this.timer = setTimeout(() => this.connect(), d);
  }
}

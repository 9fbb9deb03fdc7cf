// Typed client of the local UI API served by `parley ui` (specs/local-ui-api.md).
// The browser only ever talks to the local process, never to the homeserver.
// The request, response and event types are generated from the Rust types of
// `parley ui` (client-sdk/cli/src/ui/api.rs) into ./generated/api.ts.

import type {
  AddMembersRequest,
  ConfirmSecondFactorRequest,
  DisableSecondFactorRequest,
  RecoveryCodes,
  SecondFactorEnrollmentView,
  SecondFactorState,
  BackupEnabled,
  BackupStatusView,
  RestoreRequest,
  RestoreResult,
  Contact,
  Conversation,
  CreateConversationRequest,
  Device,
  EditMessageRequest,
  Empty,
  ErrorBody,
  ExportFileFormat,
  MarkReadRequest,
  Message,
  Presence,
  PresenceRequest,
  ReactRequest,
  SearchHit,
  SendMessageRequest,
  ServerEvent,
  SessionStatus,
  SetAdminRequest,
  SetTimerRequest,
  SignInRequest,
  TypingRequest,
  UnlockRequest,
  UpdateSettingsRequest,
} from "./generated/api";

export type {
  Attachment,
  BackupEnabled,
  BackupStatusView,
  RestoreResult,
  Contact,
  ContactDevice,
  Conversation,
  Delivery,
  Device,
  DeviceRef,
  Member,
  Message,
  Presence,
  Reaction,
  RecoveryCodes,
  SearchHit,
  SecondFactorEnrollmentView,
  SecondFactorState,
  ServerEvent,
  ServerPosition,
  ServerReceived,
  SessionStatus,
  SignInRequest,
  VerificationState,
} from "./generated/api";

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
  wrong_recovery_key: "That recovery key does not open your backup. Nothing was changed; check it and try again.",
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
  second_factor_required: "Enter the code from your authenticator app.",
  invalid_second_factor: "That code is wrong or was used already. Enter the current code.",
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
      const data = (await res.json()) as Partial<ErrorBody>;
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
  session: () => request<SessionStatus>("GET", "/api/session"),
  login: (b: SignInRequest) => request<SessionStatus>("POST", "/api/login", b),
  register: (b: SignInRequest) => request<SessionStatus>("POST", "/api/register", b),
  /** Opens the sealed store of a profile that has a session (`locked`). */
  unlock: (passphrase: string) =>
    request<SessionStatus>("POST", "/api/unlock", { passphrase } satisfies UnlockRequest),
  logout: () => request<Empty>("POST", "/api/logout", {}),

  conversations: () => request<Conversation[]>("GET", "/api/conversations"),
  createConversation: (members: string[]) =>
    request<Conversation>("POST", "/api/conversations", { members } satisfies CreateConversationRequest),
  conversation: (id: string) => request<Conversation>("GET", conv(id)),
  deleteConversation: (id: string) => request<Empty>("DELETE", conv(id)),
  addMembers: (id: string, users: string[]) =>
    request<Conversation>("POST", `${conv(id)}/members`, { users } satisfies AddMembersRequest),
  removeMember: (id: string, user: string) =>
    request<Conversation>("DELETE", `${conv(id)}/members/${enc(user)}`),
  leave: (id: string) => request<Empty>("POST", `${conv(id)}/leave`, {}),
  updateSettings: (id: string, b: UpdateSettingsRequest) => request<Conversation>("PUT", `${conv(id)}/settings`, b),
  setAdmin: (id: string, user: string, admin: boolean) =>
    request<Conversation>("POST", `${conv(id)}/admins`, { user, admin } satisfies SetAdminRequest),
  messages: (id: string, search?: string) =>
    request<Message[]>(
      "GET",
      `${conv(id)}/messages${search ? `?search=${enc(search)}` : ""}`,
    ),
  /** With `reply_to`, a reply to that message. */
  sendMessage: (id: string, text: string, reply_to?: number) =>
    request<Message>(
      "POST",
      `${conv(id)}/messages`,
      (reply_to === undefined ? { text } : { text, reply_to }) satisfies SendMessageRequest,
    ),
  /** Deletes from this device; with `forEveryone`, an own message from every member's. */
  deleteMessage: (id: string, seq: number, forEveryone = false) =>
    request<Empty>("DELETE", `${conv(id)}/messages/${seq}${forEveryone ? "?for_everyone=true" : ""}`),
  /** Adds this user's reaction, or takes it back when it is there. */
  react: (id: string, seq: number, emoji: string) =>
    request<Message>("POST", `${conv(id)}/messages/${seq}/reactions`, { emoji } satisfies ReactRequest),
  editMessage: (id: string, seq: number, text: string) =>
    request<Message>("PUT", `${conv(id)}/messages/${seq}`, { text } satisfies EditMessageRequest),
  setTimer: (id: string, timer_secs: number | null) =>
    request<Conversation>("PUT", `${conv(id)}/timer`, { timer_secs } satisfies SetTimerRequest),
  markRead: (id: string, up_to: number) =>
    request<Empty>("POST", `${conv(id)}/read`, { up_to } satisfies MarkReadRequest),
  typing: (id: string, typing: boolean) =>
    request<Empty>("POST", `${conv(id)}/typing`, { typing } satisfies TypingRequest),
  exportConversation: async (id: string, format: ExportFileFormat = "text"): Promise<ExportedFile> => {
    const res = await send("GET", `${conv(id)}/export?format=${format}`);
    const cd = res.headers.get("Content-Disposition") || "";
    const m = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(cd);
    const filename = m ? decodeURIComponent(m[1]) : `parley-${id}.${format === "json" ? "json" : "txt"}`;
    return { blob: await res.blob(), filename };
  },
  search: (q: string) => request<SearchHit[]>("GET", `/api/search?q=${enc(q)}`),

  /**
   * Sends a file (encrypted by the local process, then uploaded): `onProgress` hears the
   * fraction of the file handed to the local process.
   */
  sendFile: (id: string, file: Blob, name: string, text: string | undefined, onProgress?: (fraction: number) => void) =>
    new Promise<Message>((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      const query = `name=${enc(name)}${text ? `&text=${enc(text)}` : ""}`;
      xhr.open("POST", `${conv(id)}/files?${query}`);
      if (secret) xhr.setRequestHeader("Authorization", `Bearer ${secret}`);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.onprogress = (e) => {
        if (e.lengthComputable && onProgress) onProgress(e.total ? e.loaded / e.total : 1);
      };
      xhr.onerror = () => reject(new ApiError(LOCAL_UNREACHABLE, "Parley on this computer stopped.", 0));
      xhr.onload = () => {
        let data: unknown = null;
        try {
          data = JSON.parse(xhr.responseText);
        } catch {
          /* not JSON */
        }
        if (xhr.status >= 200 && xhr.status < 300) {
          resolve(data as Message);
        } else {
          const body = (data ?? {}) as Partial<ErrorBody>;
          reject(
            new ApiError(
              typeof body.error === "string" ? body.error : `http_${xhr.status}`,
              typeof body.message === "string" ? body.message : xhr.statusText,
              xhr.status,
            ),
          );
        }
      };
      xhr.send(file);
    }),
  /** A message's file, downloaded, checked and decrypted by the local process. */
  file: async (id: string, seq: number): Promise<Blob> => {
    const res = await send("GET", `${conv(id)}/messages/${seq}/file`);
    return res.blob();
  },

  contact: (user: string) => request<Contact>("GET", `/api/contacts/${enc(user)}`),
  verify: (user: string) => request<Contact>("POST", `/api/contacts/${enc(user)}/verify`, {}),
  acknowledge: (user: string) =>
    request<Contact>("POST", `/api/contacts/${enc(user)}/acknowledge`, {}),

  devices: () => request<Device[]>("GET", "/api/devices"),
  deleteDevice: (id: string) => request<Empty>("DELETE", `/api/devices/${enc(id)}`),
  presence: (p: Presence) => request<Empty>("POST", "/api/presence", { presence: p } satisfies PresenceRequest),

  secondFactor: () => request<SecondFactorState>("GET", "/api/2fa"),
  enrollSecondFactor: () => request<SecondFactorEnrollmentView>("POST", "/api/2fa/enroll", {}),
  confirmSecondFactor: (code: string) =>
    request<RecoveryCodes>("POST", "/api/2fa/confirm", { code } satisfies ConfirmSecondFactorRequest),
  disableSecondFactor: (password: string, code: string) =>
    request<Empty>("POST", "/api/2fa/disable", { password, code } satisfies DisableSecondFactorRequest),
  backupStatus: () => request<BackupStatusView>("GET", "/api/backup"),
  /** Turns the key backup on; the answer's recovery key is shown once. */
  enableBackup: () => request<BackupEnabled>("POST", "/api/backup", {}),
  disableBackup: () => request<Empty>("DELETE", "/api/backup"),
  restore: (recovery_key: string) =>
    request<RestoreResult>("POST", "/api/restore", { recovery_key } satisfies RestoreRequest),
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

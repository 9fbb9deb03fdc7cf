import type { Conversation, Message } from "../api";

export function msg(over: Partial<Message> = {}): Message {
  return {
    seq: 1,
    sender: "bob@b.test",
    sender_device: "dev-bob",
    mine: false,
    sent_at: "2026-11-30T10:00:00Z",
    text: "hello",
    expires_at: null,
    delivery: { state: "sent", delivered_to: [], devices: 2 },
    reactions: [],
    edited_at: null,
    ...over,
  };
}

export function conv(over: Partial<Conversation> = {}): Conversation {
  return {
    group_id: "g1@a.test",
    member: true,
    epoch: 3,
    members: [
      { user_id: "ann@a.test", device_id: "dev-ann", this_device: true, verification: "unverified" },
      { user_id: "bob@b.test", device_id: "dev-bob", this_device: false, verification: "verified" },
      { user_id: "carol@c.test", device_id: "dev-carol", this_device: false, verification: "unverified" },
    ],
    unread: 0,
    last_message: null,
    timer_secs: null,
    encryption: {
      protocol: "MLS",
      ciphersuite: "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519",
      epoch: 3,
      all_verified: false,
      changed_contacts: [],
    },
    ...over,
  };
}

export function jsonResponse(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json", ...headers },
  });
}

/** A WebSocket stand-in the tests drive by hand. */
export class FakeWebSocket {
  static instances: FakeWebSocket[] = [];
  url: string;
  onopen: (() => void) | null = null;
  onmessage: ((m: { data: string }) => void) | null = null;
  onclose: (() => void) | null = null;
  closed = false;
  constructor(url: string) {
    this.url = url;
    FakeWebSocket.instances.push(this);
  }
  open() {
    this.onopen?.();
  }
  push(event: unknown) {
    this.onmessage?.({ data: JSON.stringify(event) });
  }
  drop() {
    this.onclose?.();
  }
  close() {
    this.closed = true;
  }
  static last(): FakeWebSocket {
    return FakeWebSocket.instances[FakeWebSocket.instances.length - 1];
  }
}

import type { Conversation, Delivery, Message, VerificationState } from "./api";

/** "12345 67890 …": 12 groups of 5 digits, whatever spacing the input had. */
export function safetyNumberGroups(n: string): string[] {
  const digits = n.replace(/\s+/g, "");
  const groups: string[] = [];
  for (let i = 0; i < digits.length; i += 5) groups.push(digits.slice(i, i + 5));
  return groups;
}

/** Distinct user ids of the other members, in member order. */
export function otherMembers(c: Conversation, me?: string): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const m of c.members) {
    if (m.this_device || m.user_id === me || seen.has(m.user_id)) continue;
    seen.add(m.user_id);
    out.push(m.user_id);
  }
  // Our other devices are still "us".
  return out.filter((u) => !c.members.some((m) => m.this_device && m.user_id === u));
}

export function conversationTitle(c: Conversation, me?: string): string {
  const others = otherMembers(c, me);
  const people = others.length > 0 ? others.join(", ") : c.member ? "Only you" : "Left conversation";
  // A named group shows its name first (the people stay in the title, so it still says who).
  const name = c.settings?.name;
  return name ? `${name} — ${people}` : people;
}

/** One state per user: changed if any device says so, verified if all do. */
export function userVerification(c: Conversation, user: string): VerificationState {
  const ms = c.members.filter((m) => m.user_id === user);
  if (ms.some((m) => m.verification === "changed")) return "changed";
  if (ms.length > 0 && ms.every((m) => m.verification === "verified")) return "verified";
  return "unverified";
}

export function encryptionText(c: Conversation, me?: string): string {
  if (!c.member) return "You are no longer a member of this conversation";
  const others = otherMembers(c, me);
  const verified = others.filter((u) => userVerification(c, u) === "verified").length;
  const epoch = c.encryption?.epoch ?? c.epoch;
  const protocol = c.encryption?.protocol || "MLS";
  let text = `End-to-end encrypted with ${protocol} · epoch ${epoch}`;
  if (others.length > 0) {
    text += ` · ${verified} of ${others.length} ${others.length === 1 ? "member" : "members"} verified`;
  }
  const changed = c.encryption?.changed_contacts ?? [];
  if (changed.length > 0) text += ` · ${changed.join(", ")} changed devices`;
  return text;
}

export function deliveryText(d: Delivery): string {
  return d.state === "delivered" ? "Delivered" : "Sent";
}

/** "on a.test, b.test" or "on a.test · waiting for b.test"; null when the servers are unknown. */
export function serversText(d: Delivery): string | null {
  const servers = d.servers;
  if (!servers || servers.length === 0) return null;
  const on = servers.filter((s) => s.delivered).map((s) => s.server);
  const waiting = servers.filter((s) => !s.delivered).map((s) => s.server);
  const parts: string[] = [];
  if (on.length) parts.push(`on ${on.join(", ")}`);
  if (waiting.length) parts.push(`waiting for ${waiting.join(", ")}`);
  return parts.join(" · ");
}

function serversTitle(d: Delivery): string {
  const servers = d.servers;
  if (!servers || servers.length === 0) return "";
  const each = servers.map((s) => `${s.server}: ${s.delivered ? "received" : "waiting"}`);
  return `; member servers: ${each.join(", ")}`;
}

export function deliveryTitle(d: Delivery): string {
  return devicesTitle(d) + serversTitle(d);
}

function devicesTitle(d: Delivery): string {
  const to = d.delivered_to.map((x) => `${x.user_id} (${x.device_id})`);
  if (d.state === "delivered") {
    return to.length ? `Delivered to ${to.join(", ")}` : "Delivered to every device";
  }
  const base = "Stored by the group's server and queued for every member's server";
  if (d.devices > 0) {
    return `${base}; delivered to ${d.delivered_to.length} of ${d.devices} devices${to.length ? `: ${to.join(", ")}` : ""}`;
  }
  return base;
}

/** "5 s", "4 min", "2 h", "3 d" (rounded up so it never shows 0 before it goes). */
export function shortDuration(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.ceil(s / 60)} min`;
  if (s < 86400) return `${Math.ceil(s / 3600)} h`;
  return `${Math.ceil(s / 86400)} d`;
}

export function disappearsText(m: Message, now: number): string | null {
  if (!m.expires_at) return null;
  const left = Date.parse(m.expires_at) - now;
  return `Disappears in ${shortDuration(left)}`;
}

export function isExpired(m: Message, now: number): boolean {
  return !!m.expires_at && Date.parse(m.expires_at) <= now;
}

export function timeText(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  const hm = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return sameDay ? hm : `${d.toLocaleDateString()} ${hm}`;
}

export const TIMER_OPTIONS: { value: string; label: string }[] = [
  { value: "", label: "Off" },
  { value: "30", label: "30 seconds" },
  { value: "300", label: "5 minutes" },
  { value: "3600", label: "1 hour" },
  { value: "86400", label: "1 day" },
  { value: "604800", label: "1 week" },
];

export function parseUserList(s: string): string[] {
  return s
    .split(/[,\s]+/)
    .map((x) => x.trim())
    .filter(Boolean);
}

import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { act, render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import App from "../App";
import { setSecret } from "../api";
import { initialState, reducer } from "../state";
import { FakeWebSocket, conv, jsonResponse, msg } from "./fixtures";

type Handler = (method: string, url: string, body: unknown) => Response | Promise<Response>;

function mockServer(handler: Handler) {
  const calls: { method: string; url: string; body: unknown; auth?: string }[] = [];
  const f = vi.fn(async (url: string, init: RequestInit) => {
    const body = init.body ? JSON.parse(init.body as string) : undefined;
    const method = init.method || "GET";
    calls.push({ method, url, body, auth: (init.headers as Record<string, string>).Authorization });
    return handler(method, url, body);
  });
  vi.stubGlobal("fetch", f);
  return calls;
}

beforeEach(() => {
  setSecret(null);
  FakeWebSocket.instances = [];
  vi.stubGlobal("WebSocket", FakeWebSocket);
});
afterEach(() => vi.unstubAllGlobals());

describe("App", () => {
  it("asks for the printed URL when there is no secret", () => {
    window.history.replaceState(null, "", "/");
    render(<App />);
    expect(screen.getByRole("heading", { name: "Open Parley from its link" })).toBeInTheDocument();
    expect(FakeWebSocket.instances).toHaveLength(0);
  });

  it("shows sign-in when signed out", async () => {
    window.history.replaceState(null, "", "/#secret=s3");
    const calls = mockServer(() => jsonResponse({ signed_in: false, locked: false }));
    render(<App />);
    expect(await screen.findByRole("heading", { name: "Sign in to Parley" })).toBeInTheDocument();
    expect(calls[0].auth).toBe("Bearer s3");
    expect(window.location.hash).toBe("");
    expect(FakeWebSocket.last().url).toContain("/api/events?secret=s3");
  });

  it("shows the unlock screen when the store is locked", async () => {
    window.history.replaceState(null, "", "/#secret=s3");
    mockServer(() => jsonResponse({ signed_in: false, locked: true }));
    render(<App />);
    expect(await screen.findByLabelText("Store passphrase")).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Unlock" })).toBeInTheDocument();
  });

  it("says the local process stopped when it cannot be reached", async () => {
    window.history.replaceState(null, "", "/#secret=s3");
    vi.stubGlobal("fetch", vi.fn().mockRejectedValue(new TypeError("Failed to fetch")));
    render(<App />);
    expect(await screen.findByRole("alert")).toHaveTextContent("Parley on this computer stopped. Start `parley ui` again.");
    expect(screen.getByRole("button", { name: "Retry" })).toBeInTheDocument();
  });

  it("lists conversations, shows messages, receives pushed ones and blocks sending after a device change", async () => {
    window.history.replaceState(null, "", "/#secret=s4");
    let c = conv({ unread: 1, last_message: msg({ text: "first" }) });
    let blocked = true;
    const calls = mockServer((method, url) => {
      if (url === "/api/session") return jsonResponse({ signed_in: true, user_id: "ann@a.test", device_id: "dev-ann" });
      if (url === "/api/conversations") return jsonResponse([c]);
      if (url === "/api/conversations/g1%40a.test" && method === "GET") return jsonResponse(c);
      if (url.startsWith("/api/conversations/g1%40a.test/messages") && method === "GET")
        return jsonResponse([msg({ text: "first" })]);
      if (url.endsWith("/read") || url.endsWith("/typing")) return jsonResponse({});
      if (url.endsWith("/messages") && method === "POST") {
        if (blocked)
          return jsonResponse({ error: "verified_contact_changed", message: "bob changed" }, 409);
        return jsonResponse(msg({ seq: 3, mine: true, sender: "ann@a.test", text: "after review" }));
      }
      if (url === "/api/contacts/bob%40b.test")
        return jsonResponse({
          user_id: "bob@b.test",
          safety_number: "1".repeat(60),
          verification: "changed",
          devices: [],
          added: [],
          removed: [],
        });
      if (url === "/api/contacts/bob%40b.test/acknowledge") {
        blocked = false;
        c = { ...c, encryption: { ...c.encryption, changed_contacts: [] } };
        return jsonResponse({
          user_id: "bob@b.test",
          safety_number: "1".repeat(60),
          verification: "unverified",
          devices: [],
          added: [],
          removed: [],
        });
      }
      return jsonResponse({ error: "not_found", message: "no" }, 404);
    });
    const user = userEvent.setup();
    render(<App />);

    const nav = await screen.findByRole("navigation", { name: "Conversations" });
    const item = await within(nav).findByRole("button", { name: /^bob@b\.test, carol@c\.test, 1 unread/ });
    act(() => FakeWebSocket.last().open());
    await user.click(item);

    const log = await screen.findByRole("log", { name: "Messages" });
    expect(await within(log).findByText("first")).toBeInTheDocument();
    expect(screen.getByRole("heading", { name: "bob@b.test, carol@c.test" })).toBeInTheDocument();
    await waitFor(() => expect(calls.some((x) => x.url.endsWith("/read"))).toBe(true));

    // A message pushed over the socket appears at once.
    act(() =>
      FakeWebSocket.last().push({ event: "message", group_id: "g1@a.test", message: msg({ seq: 2, text: "pushed!" }) }),
    );
    expect(within(log).getByText("pushed!")).toBeInTheDocument();
    expect(within(log).getAllByRole("article")).toHaveLength(2);

    // Typing and presence.
    act(() => FakeWebSocket.last().push({ event: "typing", group_id: "g1@a.test", user_id: "bob@b.test", typing: true }));
    expect(screen.getByText("bob@b.test is typing…")).toBeInTheDocument();
    act(() => FakeWebSocket.last().push({ event: "presence", user_id: "bob@b.test", presence: "online" }));
    expect(screen.getByText(/online/)).toBeInTheDocument();

    // Sending is blocked: the text stays and the alert explains.
    const box = screen.getByRole("textbox", { name: "Message" });
    await user.type(box, "after review");
    await user.keyboard("{Enter}");
    expect(await screen.findByText(/Not sent/)).toBeInTheDocument();
    expect(box).toHaveValue("after review");
    act(() =>
      FakeWebSocket.last().push({ event: "verified_contact_changed", user_id: "bob@b.test", added: [], removed: [] }),
    );
    const paused = await screen.findByText("Sending is paused: bob@b.test changed devices. Review their safety number.");
    expect(screen.getByRole("status", { name: "Encryption" })).toHaveTextContent("bob@b.test changed devices");
    await user.click(within(paused.closest("[role=alert]") as HTMLElement).getByRole("button", { name: "Review" }));

    const dialog = await screen.findByRole("dialog", { name: "Profile of bob@b.test" });
    await user.click(await within(dialog).findByRole("button", { name: "Acknowledge without verifying" }));
    await within(dialog).findByText("Not verified");
    await user.click(within(dialog).getByRole("button", { name: "Close" }));
    await waitFor(() => expect(screen.queryByText(/Sending is paused/)).not.toBeInTheDocument());

    await user.click(screen.getByRole("button", { name: "Retry" }));
    expect(await within(log).findByText("after review")).toBeInTheDocument();
    expect(box).toHaveValue("");
  });
});

describe("reducer", () => {
  it("keeps a refused-device warning until dismissed", () => {
    let s = reducer(initialState, {
      type: "event",
      now: 0,
      event: {
        event: "leaf_refused",
        group_id: "g1@a.test",
        source: "commit",
        by: { user_id: "mallory@a.test", device_id: "M1" },
        leaves: [
          {
            leaf_index: 1,
            claims: { user_id: "bob@b.test", device_id: "B1" },
            signature_key: "ab",
            reason: "b.test vouches for another signature key for this device",
          },
        ],
        message: "WARNING: refused change #4 by mallory@a.test/M1",
      },
    });
    expect(s.warnings).toEqual(["WARNING: refused change #4 by mallory@a.test/M1"]);
    s = reducer(s, { type: "dismiss_warning", index: 0 });
    expect(s.warnings).toEqual([]);
  });

  it("keeps a key transparency alert (a device of this account nobody here added) until dismissed", () => {
    const message = "WARNING: a device of your account you did not add here appeared: EVIL (published in epoch 7)";
    let s = reducer(initialState, { type: "event", now: 0, event: { event: "security_alert", message } });
    expect(s.warnings).toEqual([message]);
    s = reducer(s, { type: "dismiss_warning", index: 0 });
    expect(s.warnings).toEqual([]);
  });

  it("applies a changed message in place without counting it unread; warns of a refused edit", () => {
    let s = reducer(initialState, { type: "conversations", conversations: [conv({ last_message: msg({ seq: 5 }) })] });
    s = reducer(s, { type: "messages", group_id: "g1@a.test", messages: [msg({ seq: 4 }), msg({ seq: 5 })] });
    const changed = msg({
      seq: 5,
      text: "edited",
      edited_at: "2026-11-30T10:02:00Z",
      reactions: [{ emoji: "👍", count: 1, mine: false, users: ["carol@c.test"] }],
    });
    s = reducer(s, { type: "event", now: 0, event: { event: "message_changed", group_id: "g1@a.test", message: changed } });
    expect(s.messages["g1@a.test"].map((m) => m.text)).toEqual(["hello", "edited"]);
    expect(s.messages["g1@a.test"][1].reactions[0].emoji).toBe("👍");
    expect(s.conversations[0].last_message?.text).toBe("edited");
    expect(s.conversations[0].unread).toBe(0);
    // A change to a message of a conversation not loaded adds nothing.
    s = reducer(s, {
      type: "event",
      now: 0,
      event: { event: "message_changed", group_id: "g2@a.test", message: msg({ seq: 9 }) },
    });
    expect(s.messages["g2@a.test"]).toBeUndefined();
    s = reducer(s, {
      type: "event",
      now: 0,
      event: { event: "action_refused", group_id: "g1@a.test", message: "[g1@a.test] warning: refused #6 from mallory@a.test" },
    });
    expect(s.warnings).toEqual(["[g1@a.test] warning: refused #6 from mallory@a.test"]);
  });

  it("counts unread for conversations not on screen and applies delivery receipts", () => {
    let s = reducer(initialState, { type: "conversations", conversations: [conv()] });
    s = reducer(s, { type: "event", now: 0, event: { event: "message", group_id: "g1@a.test", message: msg({ seq: 5 }) } });
    expect(s.conversations[0].unread).toBe(1);
    expect(s.conversations[0].last_message?.seq).toBe(5);
    s = reducer(s, { type: "messages", group_id: "g1@a.test", messages: [msg({ seq: 6, mine: true })] });
    s = reducer(s, {
      type: "event",
      now: 0,
      event: { event: "delivered", group_id: "g1@a.test", seq: 6, to: { user_id: "bob@b.test", device_id: "d1" } },
    });
    expect(s.messages["g1@a.test"][0].delivery.state).toBe("sent");
    s = reducer(s, {
      type: "event",
      now: 0,
      event: { event: "delivered", group_id: "g1@a.test", seq: 6, to: { user_id: "carol@c.test", device_id: "d2" } },
    });
    expect(s.messages["g1@a.test"][0].delivery.state).toBe("delivered");
    s = reducer(s, { type: "event", now: 0, event: { event: "message_deleted", group_id: "g1@a.test", seq: 6 } });
    expect(s.messages["g1@a.test"]).toHaveLength(0);
  });

  it("applies the member servers' positions of a delivery event to own messages", () => {
    let s = reducer(initialState, { type: "conversations", conversations: [conv()] });
    s = reducer(s, {
      type: "messages",
      group_id: "g1@a.test",
      messages: [msg({ seq: 4 }), msg({ seq: 5, mine: true }), msg({ seq: 8, mine: true })],
    });
    s = reducer(s, {
      type: "event",
      now: 0,
      event: {
        event: "delivery",
        group_id: "g1@a.test",
        servers: [
          { server: "a.test", delivered_up_to: 8 },
          { server: "b.test", delivered_up_to: 6 },
        ],
      },
    });
    const [theirs, five, eight] = s.messages["g1@a.test"];
    expect(theirs.delivery.servers).toBeUndefined();
    expect(five.delivery.servers).toEqual([
      { server: "a.test", delivered: true },
      { server: "b.test", delivered: true },
    ]);
    expect(eight.delivery.servers).toEqual([
      { server: "a.test", delivered: true },
      { server: "b.test", delivered: false },
    ]);
  });

  it("expires typing after 6 s", () => {
    let s = reducer(initialState, {
      type: "event",
      now: 1000,
      event: { event: "typing", group_id: "g", user_id: "bob@b.test", typing: true },
    });
    s = reducer(s, { type: "typing_expire", now: 6000 });
    expect(Object.keys(s.typing.g)).toEqual(["bob@b.test"]);
    s = reducer(s, { type: "typing_expire", now: 7001 });
    expect(Object.keys(s.typing.g)).toEqual([]);
  });
});

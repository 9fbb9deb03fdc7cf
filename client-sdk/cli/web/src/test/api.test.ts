import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ApiError, EventStream, LOCAL_UNREACHABLE, api, eventsUrl, initSecret, plainWords, setSecret } from "../api";
import { FakeWebSocket, jsonResponse } from "./fixtures";

describe("secret handling", () => {
  beforeEach(() => {
    setSecret(null);
    window.history.replaceState(null, "", "/");
  });

  it("reads #secret=, keeps it in sessionStorage and removes it from the address", () => {
    window.history.replaceState(null, "", "/#secret=abc123");
    expect(initSecret()).toBe("abc123");
    expect(sessionStorage.getItem("parley.secret")).toBe("abc123");
    expect(window.location.hash).toBe("");
    expect(window.location.href).not.toContain("abc123");
  });

  it("keeps other fragment parts", () => {
    window.history.replaceState(null, "", "/#secret=s1&x=1");
    initSecret();
    expect(window.location.hash).toBe("#x=1");
  });

  it("falls back to the stored secret after a reload", () => {
    sessionStorage.setItem("parley.secret", "stored");
    expect(initSecret()).toBe("stored");
  });

  it("returns null without a secret", () => {
    expect(initSecret()).toBeNull();
  });

  it("builds the event socket URL with the secret as a query parameter", () => {
    const loc = { protocol: "http:", host: "127.0.0.1:4567" } as Location;
    expect(eventsUrl(loc, "s e")).toBe("ws://127.0.0.1:4567/api/events?secret=s%20e");
  });
});

describe("requests", () => {
  const fetchMock = vi.fn();
  beforeEach(() => {
    setSecret("sekrit");
    fetchMock.mockReset();
    vi.stubGlobal("fetch", fetchMock);
  });
  afterEach(() => vi.unstubAllGlobals());

  it("sends Authorization: Bearer on every request", async () => {
    fetchMock.mockImplementation(async () => jsonResponse({ signed_in: false, locked: false }));
    await api.session();
    await api.conversations().catch(() => undefined);
    expect(fetchMock).toHaveBeenCalledTimes(2);
    for (const call of fetchMock.mock.calls) {
      expect(call[1].headers.Authorization).toBe("Bearer sekrit");
    }
    expect(fetchMock.mock.calls[0][0]).toBe("/api/session");
  });

  it("encodes group ids and user ids in paths and sends JSON bodies", async () => {
    fetchMock.mockImplementation(async () => jsonResponse({}));
    await api.removeMember("g1@a.test", "bob@b.test");
    expect(fetchMock.mock.calls[0][0]).toBe("/api/conversations/g1%40a.test/members/bob%40b.test");
    expect(fetchMock.mock.calls[0][1].method).toBe("DELETE");
    await api.sendMessage("g1@a.test", "hi");
    expect(fetchMock.mock.calls[1][1].body).toBe(JSON.stringify({ text: "hi" }));
    expect(fetchMock.mock.calls[1][1].headers["Content-Type"]).toBe("application/json");
  });

  it("replies, reacts, edits and deletes for everyone at their paths", async () => {
    fetchMock.mockImplementation(async () => jsonResponse({}));
    const calls = () => fetchMock.mock.calls.map((c) => [c[1].method, c[0], c[1].body]);
    await api.sendMessage("g1@a.test", "yes", 3);
    await api.react("g1@a.test", 3, "👍");
    await api.editMessage("g1@a.test", 3, "fixed");
    await api.deleteMessage("g1@a.test", 3, true);
    await api.deleteMessage("g1@a.test", 4);
    expect(calls()).toEqual([
      ["POST", "/api/conversations/g1%40a.test/messages", JSON.stringify({ text: "yes", reply_to: 3 })],
      ["POST", "/api/conversations/g1%40a.test/messages/3/reactions", JSON.stringify({ emoji: "👍" })],
      ["PUT", "/api/conversations/g1%40a.test/messages/3", JSON.stringify({ text: "fixed" })],
      ["DELETE", "/api/conversations/g1%40a.test/messages/3?for_everyone=true", undefined],
      ["DELETE", "/api/conversations/g1%40a.test/messages/4", undefined],
    ]);
  });

  it("turns an error body into a typed ApiError", async () => {
    fetchMock.mockResolvedValue(jsonResponse({ error: "wrong_password", message: "bad" }, 401));
    const err = await api.login({ server: "https://a", username: "u", password: "p", passphrase: "q" }).catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err.code).toBe("wrong_password");
    expect(err.status).toBe(401);
    expect(err.message).toBe("bad");
  });

  it("maps a failed fetch to 'Parley on this computer stopped'", async () => {
    fetchMock.mockRejectedValue(new TypeError("Failed to fetch"));
    const err = await api.session().catch((e) => e);
    expect(err.code).toBe(LOCAL_UNREACHABLE);
    expect(plainWords(err)).toBe("Parley on this computer stopped. Start `parley ui` again.");
  });

  it("exports with the file name from Content-Disposition", async () => {
    fetchMock.mockResolvedValue(
      new Response("text", { headers: { "Content-Disposition": 'attachment; filename="chat.txt"' } }),
    );
    const f = await api.exportConversation("g1@a.test");
    expect(f.filename).toBe("chat.txt");
    expect(fetchMock.mock.calls[0][0]).toBe("/api/conversations/g1%40a.test/export?format=text");
  });
});

describe("plain words", () => {
  const e = (code: string, message = "") => new ApiError(code, message, 400);
  it.each([
    ["unreachable", "Can't reach your homeserver. Check your connection and try again."],
    ["wrong_password", "Wrong username or password. Check them and try again."],
    ["not_allowed", "You're not allowed to do that."],
    ["verified_contact_changed", "Sending is paused: a verified contact changed devices. Review their safety number."],
    [LOCAL_UNREACHABLE, "Parley on this computer stopped. Start `parley ui` again."],
  ])("%s", (code, text) => {
    expect(plainWords(e(code))).toBe(text);
  });

  it("tells a wrong store passphrase from a wrong password", () => {
    expect(plainWords(e("wrong_password", "Wrong passphrase for the message store on this computer."))).toBe(
      "Wrong store passphrase. Check it and try again.",
    );
    expect(plainWords(e("wrong_password", "Wrong username or password."))).toBe(
      "Wrong username or password. Check them and try again.",
    );
  });

  it("uses the server's message for invalid input and unknown codes", () => {
    expect(plainWords(e("invalid_input", "The user id is not valid."))).toBe("The user id is not valid.");
    expect(plainWords(e("something_new", "Plain words from the server."))).toBe("Plain words from the server.");
    expect(plainWords(e("something_new"))).toBe("Something went wrong. Try again.");
  });
});

describe("EventStream", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    FakeWebSocket.instances = [];
    vi.stubGlobal("WebSocket", FakeWebSocket);
  });
  afterEach(() => {
    vi.useRealTimers();
    vi.unstubAllGlobals();
  });

  it("delivers events and reconnects with backoff", () => {
    const events: unknown[] = [];
    const states: string[] = [];
    let reconnects = 0;
    const s = new EventStream(
      (e) => events.push(e),
      (st, re) => {
        states.push(st);
        if (re) reconnects++;
      },
      () => "ws://x/api/events?secret=s",
    );
    s.start();
    FakeWebSocket.last().open();
    FakeWebSocket.last().push({ event: "presence", user_id: "bob@b.test", presence: "online" });
    expect(events).toEqual([{ event: "presence", user_id: "bob@b.test", presence: "online" }]);

    FakeWebSocket.last().drop();
    expect(states.at(-1)).toBe("reconnecting");
    expect(FakeWebSocket.instances).toHaveLength(1);
    vi.advanceTimersByTime(500);
    expect(FakeWebSocket.instances).toHaveLength(2);
    FakeWebSocket.last().drop();
    vi.advanceTimersByTime(999);
    expect(FakeWebSocket.instances).toHaveLength(2);
    vi.advanceTimersByTime(1);
    expect(FakeWebSocket.instances).toHaveLength(3);
    FakeWebSocket.last().open();
    expect(states.at(-1)).toBe("open");
    expect(reconnects).toBe(1);
    s.stop();
    expect(FakeWebSocket.last().closed).toBe(true);
  });

  it("caps the backoff at 10 s", () => {
    expect(EventStream.delay(0)).toBe(500);
    expect(EventStream.delay(3)).toBe(4000);
    expect(EventStream.delay(10)).toBe(10000);
  });
});

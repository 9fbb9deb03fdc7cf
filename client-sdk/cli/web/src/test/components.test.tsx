import { describe, expect, it, vi } from "vitest";
import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { ApiError } from "../api";
import { SignIn } from "../components/SignIn";
import { ConversationList } from "../components/ConversationList";
import { MessageItem } from "../components/MessageItem";
import { Composer } from "../components/Composer";
import { EncryptionIndicator, SendBlockedAlert, TypingIndicator } from "../components/ConversationView";
import { ProfileDialog, SafetyNumber } from "../components/Profile";
import { encryptionText, safetyNumberGroups, shortDuration } from "../format";
import { conv, msg } from "./fixtures";

const SAFETY = "123456789012345678901234567890123456789012345678901234567890";

describe("SignIn", () => {
  function setup(client = { login: vi.fn(), register: vi.fn() }) {
    const onSignedIn = vi.fn();
    render(<SignIn onSignedIn={onSignedIn} client={client} />);
    return { client, onSignedIn, user: userEvent.setup() };
  }

  async function fill(user: ReturnType<typeof userEvent.setup>, v: Record<string, string>) {
    for (const [label, value] of Object.entries(v)) {
      const el = screen.getByLabelText(label);
      await user.clear(el);
      await user.type(el, value);
    }
  }

  it("has the heading and labelled fields", () => {
    setup();
    expect(screen.getByRole("heading", { name: "Sign in to Parley" })).toBeInTheDocument();
    for (const l of ["Server URL", "Username", "Password", "Store passphrase"]) {
      expect(screen.getByLabelText(l)).toBeInTheDocument();
    }
    expect(screen.getByRole("button", { name: "Sign in" })).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Create account" })).toBeInTheDocument();
    expect(screen.queryByLabelText("CA certificate (PEM)")).not.toBeInTheDocument();
  });

  it("validates before calling the API", async () => {
    const { client, user } = setup();
    await user.click(screen.getByRole("button", { name: "Sign in" }));
    expect(screen.getByRole("alert")).toHaveTextContent("Enter your server URL.");
    await fill(user, { "Server URL": "http://plain.test" });
    await user.click(screen.getByRole("button", { name: "Sign in" }));
    expect(screen.getByRole("alert")).toHaveTextContent("must start with https://");
    await fill(user, { "Server URL": "https://a.test", Username: "ann", Password: "short", "Store passphrase": "short" });
    await user.click(screen.getByRole("button", { name: "Create account" }));
    expect(screen.getByRole("alert")).toHaveTextContent("at least 10 characters");
    expect(client.login).not.toHaveBeenCalled();
    expect(client.register).not.toHaveBeenCalled();
  });

  it("reveals the CA field and sends it", async () => {
    const { client, user, onSignedIn } = setup();
    client.login.mockResolvedValue({ signed_in: true, user_id: "ann@a.test" });
    await user.click(screen.getByRole("checkbox", { name: "Private CA" }));
    await fill(user, {
      "Server URL": "https://a.test:8443",
      Username: "ann",
      Password: "correct horse",
      "Store passphrase": "a long passphrase",
      "CA certificate (PEM)": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
    });
    await user.click(screen.getByRole("button", { name: "Sign in" }));
    expect(client.login).toHaveBeenCalledWith({
      server: "https://a.test:8443",
      username: "ann",
      password: "correct horse",
      passphrase: "a long passphrase",
      ca_pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
    });
    expect(onSignedIn).toHaveBeenCalledWith({ signed_in: true, user_id: "ann@a.test" }, "login");
  });

  it("shows a wrong password in plain words and keeps the input for Retry", async () => {
    const { client, user } = setup();
    client.login.mockRejectedValueOnce(new ApiError("wrong_password", "wrong password", 401));
    await fill(user, { "Server URL": "https://a.test", Username: "ann", Password: "wrong pass!", "Store passphrase": "0123456789ab" });
    await user.click(screen.getByRole("button", { name: "Sign in" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("Wrong username or password.");
    expect(screen.getByLabelText("Username")).toHaveValue("ann");
    client.login.mockResolvedValueOnce({ signed_in: true });
    await user.click(screen.getByRole("button", { name: "Retry" }));
    expect(client.login).toHaveBeenCalledTimes(2);
  });

  it("shows an unreachable homeserver in plain words", async () => {
    const { client, user } = setup();
    client.register.mockRejectedValueOnce(new ApiError("unreachable", "x", 502));
    await fill(user, {
      "Server URL": "https://a.test",
      Username: "ann",
      Password: "0123456789",
      "Store passphrase": "0123456789ab",
    });
    await user.click(screen.getByRole("button", { name: "Create account" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("Can't reach your homeserver.");
  });
});

describe("ConversationList", () => {
  it("names each conversation by the other members and its unread count", () => {
    const onSelect = vi.fn();
    render(
      <nav aria-label="Conversations">
        <ConversationList
          me="ann@a.test"
          selected={null}
          onSelect={onSelect}
          conversations={[
            conv({ group_id: "g1", unread: 2, last_message: msg({ text: "hey there" }) }),
            conv({
              group_id: "g2",
              unread: 0,
              members: [
                { user_id: "ann@a.test", device_id: "d", this_device: true, verification: "unverified" },
                { user_id: "dan@d.test", device_id: "e", this_device: false, verification: "unverified" },
              ],
            }),
          ]}
        />
      </nav>,
    );
    const list = within(screen.getByRole("navigation", { name: "Conversations" })).getByRole("list");
    const buttons = within(list).getAllByRole("button");
    expect(buttons).toHaveLength(2);
    expect(buttons[0]).toHaveAccessibleName(/^bob@b\.test, carol@c\.test, 2 unread/);
    expect(buttons[0]).toHaveAccessibleName(/hey there/);
    expect(buttons[1]).toHaveAccessibleName(/^dan@d\.test/);
    expect(buttons[1]).not.toHaveAccessibleName(/unread/);
    buttons[1].click();
    expect(onSelect).toHaveBeenCalledWith("g2");
  });
});

describe("MessageItem", () => {
  it("shows sender, time, body and 'Sent' with the devices in a tooltip", () => {
    render(
      <MessageItem
        now={Date.now()}
        onDelete={() => undefined}
        message={msg({
          mine: true,
          sender: "ann@a.test",
          text: "hi all",
          delivery: { state: "sent", delivered_to: [{ user_id: "bob@b.test", device_id: "d1" }], devices: 2 },
        })}
      />,
    );
    const a = screen.getByRole("article");
    expect(a).toHaveTextContent("hi all");
    expect(a).toHaveTextContent("ann@a.test");
    expect(a).toHaveTextContent("Sent");
    expect(within(a).getByText("Sent")).toHaveAttribute("title", expect.stringContaining("1 of 2 devices: bob@b.test (d1)"));
    expect(a.querySelector("time")).toHaveAttribute("dateTime", "2026-11-30T10:00:00Z");
  });

  it("shows 'Delivered' and a disappearing countdown; Delete message calls back", async () => {
    const onDelete = vi.fn();
    const now = Date.parse("2026-11-30T10:00:00Z");
    render(
      <MessageItem
        now={now}
        onDelete={onDelete}
        message={msg({
          seq: 7,
          mine: true,
          expires_at: "2026-11-30T10:00:05Z",
          delivery: { state: "delivered", delivered_to: [{ user_id: "bob@b.test", device_id: "d1" }], devices: 1 },
        })}
      />,
    );
    const a = screen.getByRole("article");
    expect(a).toHaveTextContent("Delivered");
    expect(a).toHaveTextContent("Disappears in 5 s");
    await userEvent.click(within(a).getByRole("button", { name: "Delete message" }));
    expect(onDelete).toHaveBeenCalledWith(7);
  });

  it("shows which member servers have an own message and which are awaited", () => {
    const { unmount } = render(
      <MessageItem
        now={Date.now()}
        onDelete={() => undefined}
        message={msg({
          mine: true,
          sender: "ann@a.test",
          delivery: {
            state: "sent",
            delivered_to: [],
            devices: 2,
            servers: [
              { server: "a.test", delivered: true },
              { server: "b.test", delivered: false },
            ],
          },
        })}
      />,
    );
    let a = screen.getByRole("article");
    expect(a).toHaveTextContent("Sent");
    const servers = within(a).getByText("· on a.test · waiting for b.test");
    expect(servers).toHaveAttribute("title", expect.stringContaining("a.test: received, b.test: waiting"));
    unmount();
    render(
      <MessageItem
        now={Date.now()}
        onDelete={() => undefined}
        message={msg({
          mine: true,
          delivery: {
            state: "delivered",
            delivered_to: [],
            devices: 1,
            servers: [
              { server: "a.test", delivered: true },
              { server: "b.test", delivered: true },
            ],
          },
        })}
      />,
    );
    a = screen.getByRole("article");
    expect(within(a).getByText("Delivered")).toBeInTheDocument();
    expect(within(a).getByText("· on a.test, b.test")).toBeInTheDocument();
    expect(a).not.toHaveTextContent("waiting");
  });

  it("shows a reply's quote, an edited mark and reaction counts; reacting toggles", async () => {
    const onReact = vi.fn();
    render(
      <MessageItem
        now={Date.now()}
        onDelete={() => undefined}
        quoted={msg({ seq: 2, sender: "ann@a.test", text: "Lunch at noon?" })}
        onReact={onReact}
        message={msg({
          seq: 3,
          text: "Yes!",
          reply_to: 2,
          edited_at: "2026-11-30T10:01:00Z",
          reactions: [
            { emoji: "👍", count: 2, mine: true, users: ["ann@a.test", "carol@c.test"] },
            { emoji: "🎉", count: 1, mine: false, users: ["carol@c.test"] },
          ],
        })}
      />,
    );
    const a = screen.getByRole("article");
    const quote = within(a).getByLabelText("In reply to");
    expect(quote).toHaveTextContent("ann@a.test");
    expect(quote).toHaveTextContent("Lunch at noon?");
    expect(a).toHaveTextContent("(edited)");
    const mine = within(a).getByRole("button", { name: "👍 2" });
    expect(mine).toHaveAttribute("aria-pressed", "true");
    expect(mine).toHaveAttribute("title", "ann@a.test, carol@c.test");
    expect(within(a).getByRole("button", { name: "🎉 1" })).toHaveAttribute("aria-pressed", "false");
    await userEvent.click(mine);
    expect(onReact).toHaveBeenCalledWith(3, "👍");
    // The picker offers a few emoji.
    await userEvent.click(within(a).getByRole("button", { name: "React" }));
    await userEvent.click(within(a).getByRole("button", { name: "React with ❤️" }));
    expect(onReact).toHaveBeenLastCalledWith(3, "❤️");
    expect(within(a).queryByRole("group", { name: "Pick a reaction" })).toBeNull();
  });

  it("says when the quoted message is gone, and offers no actions without handlers", () => {
    render(<MessageItem now={Date.now()} onDelete={() => undefined} quoted={null} message={msg({ reply_to: 9 })} />);
    const a = screen.getByRole("article");
    expect(within(a).getByLabelText("In reply to")).toHaveTextContent("Message no longer here");
    expect(within(a).queryByRole("button", { name: "React" })).toBeNull();
    expect(within(a).queryByRole("button", { name: "Reply" })).toBeNull();
  });

  it("edits and deletes for everyone only own messages; replies to any", async () => {
    const onEdit = vi.fn().mockResolvedValue(undefined);
    const onDeleteForEveryone = vi.fn();
    const onReply = vi.fn();
    const theirs = msg({ seq: 4, text: "theirs" });
    const { unmount } = render(
      <MessageItem
        now={Date.now()}
        onDelete={() => undefined}
        message={theirs}
        onEdit={onEdit}
        onReply={onReply}
        onDeleteForEveryone={onDeleteForEveryone}
      />,
    );
    let a = screen.getByRole("article");
    expect(within(a).queryByRole("button", { name: "Edit message" })).toBeNull();
    expect(within(a).queryByRole("button", { name: "Delete for everyone" })).toBeNull();
    await userEvent.click(within(a).getByRole("button", { name: "Reply" }));
    expect(onReply).toHaveBeenCalledWith(theirs);
    unmount();

    render(
      <MessageItem
        now={Date.now()}
        onDelete={() => undefined}
        message={msg({ seq: 5, mine: true, sender: "ann@a.test", text: "typo" })}
        onEdit={onEdit}
        onDeleteForEveryone={onDeleteForEveryone}
      />,
    );
    a = screen.getByRole("article");
    await userEvent.click(within(a).getByRole("button", { name: "Edit message" }));
    const field = within(a).getByLabelText("New text");
    await userEvent.clear(field);
    await userEvent.type(field, "fixed");
    await userEvent.click(within(a).getByRole("button", { name: "Save" }));
    expect(onEdit).toHaveBeenCalledWith(5, "fixed");
    expect(within(a).queryByLabelText("New text")).toBeNull();
    await userEvent.click(within(a).getByRole("button", { name: "Delete for everyone" }));
    expect(onDeleteForEveryone).toHaveBeenCalledWith(5);
  });

  it("keeps the editor open with the reason when an edit fails", async () => {
    const onEdit = vi.fn().mockRejectedValue(new ApiError("not_allowed", "", 403));
    render(
      <MessageItem
        now={Date.now()}
        onDelete={() => undefined}
        message={msg({ seq: 5, mine: true, text: "typo" })}
        onEdit={onEdit}
      />,
    );
    const a = screen.getByRole("article");
    await userEvent.click(within(a).getByRole("button", { name: "Edit message" }));
    await userEvent.click(within(a).getByRole("button", { name: "Save" }));
    expect(within(a).getByRole("alert")).toHaveTextContent("Not edited — You're not allowed to do that.");
    expect(within(a).getByLabelText("New text")).toBeInTheDocument();
  });

  it("formats durations", () => {
    expect(shortDuration(4200)).toBe("5 s");
    expect(shortDuration(5 * 60_000)).toBe("5 min");
    expect(shortDuration(3600_000)).toBe("1 h");
    expect(shortDuration(7 * 86400_000)).toBe("7 d");
  });
});

describe("Composer", () => {
  it("sends on Enter, adds a newline on Shift+Enter", async () => {
    const onSend = vi.fn().mockResolvedValue(undefined);
    const user = userEvent.setup();
    render(<Composer onSend={onSend} />);
    const box = screen.getByRole("textbox", { name: "Message" });
    await user.type(box, "line one{Shift>}{Enter}{/Shift}line two");
    expect(box).toHaveValue("line one\nline two");
    await user.keyboard("{Enter}");
    expect(onSend).toHaveBeenCalledWith("line one\nline two");
    expect(box).toHaveValue("");
  });

  it("keeps the text on failure and offers Retry", async () => {
    const onSend = vi
      .fn()
      .mockRejectedValueOnce(new ApiError("unreachable", "", 502))
      .mockResolvedValueOnce(undefined);
    const user = userEvent.setup();
    render(<Composer onSend={onSend} />);
    const box = screen.getByRole("textbox", { name: "Message" });
    await user.type(box, "important");
    await user.click(screen.getByRole("button", { name: "Send" }));
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("Not sent — Can't reach your homeserver.");
    expect(box).toHaveValue("important");
    await user.click(within(alert).getByRole("button", { name: "Retry" }));
    expect(onSend).toHaveBeenCalledTimes(2);
    expect(onSend).toHaveBeenLastCalledWith("important");
    expect(box).toHaveValue("");
    expect(screen.queryByRole("alert")).not.toBeInTheDocument();
  });

  it("shows what is replied to, and cancels the reply", async () => {
    const onCancelReply = vi.fn();
    render(
      <Composer
        onSend={vi.fn().mockResolvedValue(undefined)}
        replyTo={msg({ seq: 2, sender: "bob@b.test", text: "Lunch?" })}
        onCancelReply={onCancelReply}
      />,
    );
    expect(screen.getByLabelText("Replying to")).toHaveTextContent("Replying to bob@b.test: Lunch?");
    await userEvent.click(screen.getByRole("button", { name: "Cancel reply" }));
    expect(onCancelReply).toHaveBeenCalled();
  });

  it("reports typing", async () => {
    const onTyping = vi.fn();
    const user = userEvent.setup();
    render(<Composer onSend={vi.fn().mockResolvedValue(undefined)} onTyping={onTyping} />);
    await user.type(screen.getByRole("textbox", { name: "Message" }), "abc");
    expect(onTyping).toHaveBeenCalledWith(true);
    expect(onTyping).toHaveBeenCalledTimes(1);
    await user.keyboard("{Enter}");
    expect(onTyping).toHaveBeenLastCalledWith(false);
  });
});

describe("encryption indicator", () => {
  it("states protocol, epoch and verification", () => {
    render(<EncryptionIndicator conversation={conv()} me="ann@a.test" />);
    expect(screen.getByRole("status", { name: "Encryption" })).toHaveTextContent(
      "End-to-end encrypted with MLS · epoch 3 · 1 of 2 members verified",
    );
  });

  it("names contacts who changed devices", () => {
    const c = conv({
      members: [
        { user_id: "ann@a.test", device_id: "a", this_device: true, verification: "unverified" },
        { user_id: "bob@b.test", device_id: "b", this_device: false, verification: "changed" },
      ],
      encryption: { ...conv().encryption, changed_contacts: ["bob@b.test"] },
    });
    expect(encryptionText(c, "ann@a.test")).toBe(
      "End-to-end encrypted with MLS · epoch 3 · 0 of 1 member verified · bob@b.test changed devices",
    );
  });

  it("counts a user once across devices and ignores my other devices", () => {
    const c = conv({
      epoch: 9,
      encryption: { ...conv().encryption, epoch: 9 },
      members: [
        { user_id: "ann@a.test", device_id: "a1", this_device: true, verification: "unverified" },
        { user_id: "ann@a.test", device_id: "a2", this_device: false, verification: "unverified" },
        { user_id: "bob@b.test", device_id: "b1", this_device: false, verification: "verified" },
        { user_id: "bob@b.test", device_id: "b2", this_device: false, verification: "verified" },
      ],
    });
    expect(encryptionText(c, "ann@a.test")).toBe("End-to-end encrypted with MLS · epoch 9 · 1 of 1 member verified");
  });

  it("shows typing and the send block", async () => {
    const onReview = vi.fn();
    render(
      <>
        <TypingIndicator users={["bob@b.test"]} />
        <SendBlockedAlert users={["bob@b.test"]} onReview={onReview} />
      </>,
    );
    expect(screen.getByText("bob@b.test is typing…")).toHaveAttribute("aria-live", "polite");
    const alert = screen.getByRole("alert");
    expect(alert).toHaveTextContent("Sending is paused: bob@b.test changed devices. Review their safety number.");
    await userEvent.click(within(alert).getByRole("button", { name: "Review" }));
    expect(onReview).toHaveBeenCalled();
  });
});

describe("safety number and profile", () => {
  it("formats 12 groups of 5", () => {
    expect(safetyNumberGroups("12345 67890 12345")).toEqual(["12345", "67890", "12345"]);
    const g = safetyNumberGroups(SAFETY);
    expect(g).toHaveLength(12);
    expect(g.every((x) => x.length === 5)).toBe(true);
    render(<SafetyNumber value={SAFETY} />);
    expect(screen.getByLabelText("Safety number")).toHaveTextContent(
      "12345 67890 12345 67890 12345 67890 12345 67890 12345 67890 12345 67890",
    );
  });

  function contact(verification: "verified" | "unverified" | "changed") {
    return {
      user_id: "bob@b.test",
      safety_number: SAFETY,
      verification,
      devices: [{ device_id: "d1", signature_key: "k1" }],
      added: verification === "changed" ? [{ device_id: "d2", signature_key: "k2" }] : [],
      removed: [],
    };
  }

  it("marks an unverified contact verified", async () => {
    const client = {
      contact: vi.fn().mockResolvedValue(contact("unverified")),
      verify: vi.fn().mockResolvedValue(contact("verified")),
      acknowledge: vi.fn(),
    };
    const onChanged = vi.fn();
    render(<ProfileDialog user_id="bob@b.test" onClose={() => undefined} client={client} onChanged={onChanged} />);
    const dialog = screen.getByRole("dialog", { name: "Profile of bob@b.test" });
    expect(await within(dialog).findByText("Not verified")).toBeInTheDocument();
    await userEvent.click(within(dialog).getByRole("button", { name: "Mark verified" }));
    expect(await within(dialog).findByText("Verified")).toBeInTheDocument();
    expect(client.verify).toHaveBeenCalledWith("bob@b.test");
    expect(onChanged).toHaveBeenCalled();
    expect(within(dialog).queryByRole("button", { name: "Mark verified" })).not.toBeInTheDocument();
  });

  it("warns when a verified contact's devices changed and lets the user acknowledge", async () => {
    const client = {
      contact: vi.fn().mockResolvedValue(contact("changed")),
      verify: vi.fn(),
      acknowledge: vi.fn().mockResolvedValue(contact("unverified")),
    };
    render(<ProfileDialog user_id="bob@b.test" onClose={() => undefined} client={client} />);
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent(
      "bob@b.test has new or removed devices since you verified them. Compare the safety number again.",
    );
    expect(screen.getByText("Devices changed since you verified")).toBeInTheDocument();
    expect(screen.getAllByRole("button", { name: "Mark verified" })).toHaveLength(1);
    await userEvent.click(within(alert).getByRole("button", { name: "Acknowledge without verifying" }));
    expect(client.acknowledge).toHaveBeenCalledWith("bob@b.test");
    expect(await screen.findByText("Not verified")).toBeInTheDocument();
    expect(screen.queryByRole("alert")).not.toBeInTheDocument();
  });

  it("shows a load failure with Retry", async () => {
    const client = {
      contact: vi.fn().mockRejectedValueOnce(new ApiError("not_allowed", "", 403)).mockResolvedValueOnce(contact("verified")),
      verify: vi.fn(),
      acknowledge: vi.fn(),
    };
    render(<ProfileDialog user_id="bob@b.test" onClose={() => undefined} client={client} />);
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("You're not allowed to do that.");
    await userEvent.click(within(alert).getByRole("button", { name: "Retry" }));
    expect(await screen.findByText("Verified")).toBeInTheDocument();
  });
});

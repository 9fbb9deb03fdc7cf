import { describe, expect, it, vi } from "vitest";
import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { ApiError } from "../api";
import { BackupDialog, RestoreDialog } from "../components/Backup";
import { initialState, reducer } from "../state";

const STATUS_OFF = {
  enabled: false,
  chunks: 0,
  used_bytes: 0,
  quota_bytes: 268435456,
  pending_changes: false,
};
const KEY = "ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ23-4567-ABCD-EFGH-IJKL-MNOP";

describe("BackupDialog", () => {
  it("shows the recovery key once and cannot be left before it is saved", async () => {
    const user = userEvent.setup();
    const onClose = vi.fn();
    const client = {
      backupStatus: vi.fn().mockResolvedValue(STATUS_OFF),
      enableBackup: vi.fn().mockResolvedValue({
        recovery_key: KEY,
        status: { ...STATUS_OFF, enabled: true, chunks: 4, used_bytes: 2048, key_kind: "recovery_key" },
      }),
      disableBackup: vi.fn(),
    };
    render(<BackupDialog onClose={onClose} client={client} />);
    await user.click(await screen.findByRole("button", { name: "Turn on backup" }));
    expect(await screen.findByRole("group", { name: "Recovery key" })).toHaveTextContent(KEY);
    const done = screen.getByRole("button", { name: "Done" });
    expect(done).toBeDisabled();
    await user.click(screen.getByRole("checkbox", { name: /I have saved my recovery key/ }));
    expect(done).toBeEnabled();
    await user.click(done);
    expect(screen.queryByText(KEY)).not.toBeInTheDocument();
    expect(screen.getByText(/Backup is on/)).toBeInTheDocument();
    expect(screen.getByText(/4 parts, 2.0 KB of 256.0 MB used/)).toBeInTheDocument();
    expect(onClose).not.toHaveBeenCalled();
  });
});

describe("RestoreDialog", () => {
  it("restores with progress and says what came back", async () => {
    const user = userEvent.setup();
    let finish: (v: unknown) => void = () => {};
    const client = { restore: vi.fn().mockReturnValue(new Promise((r) => (finish = r))) };
    const onRestored = vi.fn();
    const { rerender } = render(
      <RestoreDialog onClose={vi.fn()} progress={null} onRestored={onRestored} client={client} />,
    );
    await user.type(screen.getByLabelText("Recovery key"), KEY);
    await user.click(screen.getByRole("button", { name: "Restore" }));
    expect(client.restore).toHaveBeenCalledWith(KEY);
    rerender(
      <RestoreDialog onClose={vi.fn()} progress={{ done: 3, total: 8 }} onRestored={onRestored} client={client} />,
    );
    expect(screen.getByText("Restoring… 3 of 8")).toBeInTheDocument();
    expect(screen.getByLabelText("Restore progress")).toHaveAttribute("value", "3");
    finish({ conversations: 2, messages_added: 40, resumed: 0, joined: 2 });
    expect(await screen.findByText(/Restored 2 conversations with 40 messages/)).toBeInTheDocument();
    expect(onRestored).toHaveBeenCalled();
  });

  it("says a wrong key changed nothing", async () => {
    const user = userEvent.setup();
    const client = {
      restore: vi.fn().mockRejectedValue(new ApiError("wrong_recovery_key", "wrong recovery key", 401)),
    };
    render(<RestoreDialog onClose={vi.fn()} progress={null} client={client} />);
    await user.type(screen.getByLabelText("Recovery key"), "WRONG");
    await user.click(screen.getByRole("button", { name: "Restore" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("Nothing was changed");
  });

  it("restore events update the progress", () => {
    const s = reducer(initialState, { type: "event", event: { event: "restore", done: 1, total: 5 }, now: 0 });
    expect(s.restore).toEqual({ done: 1, total: 5 });
  });
});

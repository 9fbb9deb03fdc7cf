import { describe, expect, it, vi } from "vitest";
import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { ApiError } from "../api";
import { SignIn } from "../components/SignIn";
import { SecondFactorDialog, svgDataUrl } from "../components/SecondFactor";

describe("sign-in with a second factor", () => {
  it("asks for the code when the homeserver needs one and sends it", async () => {
    const client = { login: vi.fn(), register: vi.fn() };
    const onSignedIn = vi.fn();
    render(<SignIn onSignedIn={onSignedIn} client={client} />);
    const user = userEvent.setup();
    for (const [label, value] of Object.entries({
      "Server URL": "https://a.test",
      Username: "ann",
      Password: "correct horse",
      "Store passphrase": "a long passphrase",
    })) {
      await user.type(screen.getByLabelText(label), value);
    }
    expect(screen.queryByLabelText("Second-factor code")).not.toBeInTheDocument();
    client.login.mockRejectedValueOnce(new ApiError("second_factor_required", "needs a code", 401));
    await user.click(screen.getByRole("button", { name: "Sign in" }));
    const field = await screen.findByLabelText("Second-factor code");
    // Without a code, nothing is sent.
    await user.click(screen.getByRole("button", { name: "Sign in" }));
    expect(screen.getByRole("alert")).toHaveTextContent("Enter the code");
    expect(client.login).toHaveBeenCalledTimes(1);

    client.login.mockRejectedValueOnce(new ApiError("invalid_second_factor", "", 401));
    await user.type(field, "000000");
    await user.click(screen.getByRole("button", { name: "Sign in" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("That code is wrong or was used already.");
    expect(field).toHaveValue("");

    client.login.mockResolvedValueOnce({ signed_in: true, user_id: "ann@a.test" });
    await user.type(field, "123456");
    await user.click(screen.getByRole("button", { name: "Sign in" }));
    expect(client.login).toHaveBeenLastCalledWith({
      server: "https://a.test",
      username: "ann",
      password: "correct horse",
      passphrase: "a long passphrase",
      second_factor: "123456",
    });
    expect(onSignedIn).toHaveBeenCalledWith({ signed_in: true, user_id: "ann@a.test" }, "login");
  });
});

describe("two-step sign-in dialog", () => {
  function client() {
    return {
      secondFactor: vi.fn(),
      enrollSecondFactor: vi.fn(),
      confirmSecondFactor: vi.fn(),
      disableSecondFactor: vi.fn(),
    };
  }

  it("turns it on: QR code as an image, confirming code, recovery codes once", async () => {
    const c = client();
    c.secondFactor.mockResolvedValueOnce({ enabled: false, pending: false, recovery_codes_left: 0 });
    c.enrollSecondFactor.mockResolvedValueOnce({
      secret: "JBSWY3DPEHPK3PXP",
      otpauth_uri: "otpauth://totp/a.test:ann%40a.test?secret=JBSWY3DPEHPK3PXP",
      qr_svg: '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
    });
    const codes = Array.from({ length: 10 }, (_, i) => `aaaa-bbbb-cccc-000${i}`);
    c.confirmSecondFactor.mockResolvedValueOnce({ recovery_codes: codes });
    c.secondFactor.mockResolvedValueOnce({ enabled: true, pending: false, recovery_codes_left: 10 });
    render(<SecondFactorDialog onClose={vi.fn()} client={c} />);
    const user = userEvent.setup();
    await user.click(await screen.findByRole("button", { name: "Turn on" }));
    const qr = await screen.findByRole("img", { name: /QR code/ });
    expect(qr.getAttribute("src")).toMatch(/^data:image\/svg\+xml/);
    // The SVG is an image source, never markup in the page.
    expect(document.querySelector("script")).toBeNull();
    expect(screen.getByLabelText("Secret")).toHaveTextContent("JBSWY3DPEHPK3PXP");
    await user.type(screen.getByLabelText("Code shown by the app"), "123456");
    await user.click(screen.getByRole("button", { name: "Confirm" }));
    expect(c.confirmSecondFactor).toHaveBeenCalledWith("123456");
    const list = await screen.findByRole("list", { name: "Recovery codes" });
    expect(list.querySelectorAll("li")).toHaveLength(10);
    expect(await screen.findByText(/10 recovery codes left/)).toBeInTheDocument();
    await user.click(screen.getByRole("button", { name: "I have saved them" }));
    expect(screen.queryByRole("list", { name: "Recovery codes" })).not.toBeInTheDocument();
  });

  it("turns it off with the password and a code", async () => {
    const c = client();
    c.secondFactor.mockResolvedValueOnce({ enabled: true, pending: false, recovery_codes_left: 9 });
    c.disableSecondFactor.mockRejectedValueOnce(new ApiError("invalid_second_factor", "", 401));
    render(<SecondFactorDialog onClose={vi.fn()} client={c} />);
    const user = userEvent.setup();
    await user.click(await screen.findByRole("button", { name: "Turn off" }));
    expect(screen.getByRole("alert")).toHaveTextContent("Enter your password");
    await user.type(screen.getByLabelText("Password"), "correct horse");
    await user.type(screen.getByLabelText("Current code or recovery code"), "111111");
    await user.click(screen.getByRole("button", { name: "Turn off" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("That code is wrong");
    c.disableSecondFactor.mockResolvedValueOnce({});
    c.secondFactor.mockResolvedValueOnce({ enabled: false, pending: false, recovery_codes_left: 0 });
    await user.click(screen.getByRole("button", { name: "Turn off" }));
    expect(c.disableSecondFactor).toHaveBeenLastCalledWith("correct horse", "111111");
    expect(await screen.findByRole("button", { name: "Turn on" })).toBeInTheDocument();
  });

  it("makes a data URL of the SVG", () => {
    expect(svgDataUrl("<svg/>")).toBe("data:image/svg+xml;charset=utf-8,%3Csvg%2F%3E");
  });
});

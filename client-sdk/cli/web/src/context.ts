import { createContext, useContext } from "react";
import type { Dispatch } from "react";
import type { Action, State } from "./state";

export type DialogState =
  | { kind: "new" }
  | { kind: "add"; group_id: string }
  | { kind: "members"; group_id: string }
  | { kind: "settings"; group_id: string }
  | { kind: "profile"; user_id: string }
  | { kind: "devices" }
  | { kind: "second_factor" }
  | { kind: "backup" }
  | { kind: "restore" }
  | { kind: "delete"; group_id: string };

export interface Failure {
  label: string;
  message: string;
  retry?: () => void;
}

export interface AppCtx {
  state: State;
  dispatch: Dispatch<Action>;
  me: string | undefined;
  dialog: DialogState | null;
  openDialog: (d: DialogState | null) => void;
  failure: Failure | null;
  /** Runs an action; on failure shows what failed in plain words, with Retry. */
  run: (label: string, fn: () => Promise<void>) => Promise<boolean>;
  clearFailure: () => void;
  reloadConversations: () => Promise<void>;
}

export const AppContext = createContext<AppCtx | null>(null);

export function useApp(): AppCtx {
  const c = useContext(AppContext);
  if (!c) throw new Error("AppContext missing");
  return c;
}

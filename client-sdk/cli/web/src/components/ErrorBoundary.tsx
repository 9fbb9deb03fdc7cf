import { Component } from "react";
import type { ReactNode } from "react";

/** A crash in the page shows plain words and a reload button, not a blank page. */
export class ErrorBoundary extends Component<{ children: ReactNode }, { error: Error | null }> {
  state = { error: null as Error | null };

  static getDerivedStateFromError(error: Error) {
    return { error };
  }

  render() {
    if (!this.state.error) return this.props.children;
    return (
      <main className="mx-auto max-w-lg p-6">
        <h1 className="mb-3 text-2xl font-bold">Something went wrong in this page</h1>
        <p role="alert" className="mb-3">
          {this.state.error.message || "An unexpected error happened."} Your messages are safe: they
          are kept by Parley on this computer.
        </p>
        <button type="button" className="btn-primary" onClick={() => window.location.reload()}>
          Reload
        </button>
      </main>
    );
  }
}

/** A URL fit for logs and status pages: any password in it replaced by `***`. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (!parsed.password) return url;
    parsed.password = "***";
    return parsed.toString();
  } catch {
    // Not a URL we can parse: it may still hold a secret, so keep only what precedes any `@`.
    return url.includes("@") ? `***@${url.slice(url.lastIndexOf("@") + 1)}` : url;
  }
}

/** How xrun writes words for people: shell quoting and the rows of an --explain plan. */

/** A word as a shell reads it back: bare when it is safe, else in single quotes. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** One row of an --explain plan: a label column ten wide, then the text. */
export function planRow(label: string, text: string): string {
  return `${label.padEnd(10)}${printable(text)}\n`;
}

/**
 * `s` safe to print as part of one line: control characters (a newline, an
 * ESC that would start a terminal escape sequence) as C escapes, `\xHH` for
 * the rest, and each byte that is not UTF-8 (a lone U+DC80-U+DCFF, see
 * src/bytes.ts) as `\xHH` too. File names and ELF strings come from files
 * anyone may make: printed raw, they could rewrite the terminal or fake lines.
 */
export function printable(s: string): string {
  // eslint-disable-next-line no-control-regex -- finding control characters is the point
  return s.replace(/[\x00-\x1f\x7f-\x9f]|(?<![\uD800-\uDBFF])[\uDC80-\uDCFF]/g, (c) => {
    const named: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '\x1b': '\\e' };
    const u = c.charCodeAt(0);
    return named[c] ?? `\\x${(u >= 0xdc00 ? u - 0xdc00 : u).toString(16).padStart(2, '0')}`;
  });
}


/** How xrun writes words for people: shell quoting and the rows of an --explain plan. */

/** A word as a shell reads it back: bare when it is safe, else in single quotes. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** One row of an --explain plan: a label column ten wide, then the text. */
export function planRow(label: string, text: string): string {
  return `${label.padEnd(10)}${text}\n`;
}

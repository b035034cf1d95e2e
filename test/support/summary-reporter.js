/**
 * Prints the plain closing line CI reads ("N passed, N failed[, N skipped]") after jest's own summary, so a run that
 * executed no test is told apart from a green one.
 */
class SummaryReporter {
  onRunComplete(_contexts, results) {
    const skipped = results.numPendingTests + results.numTodoTests;
    const line = `${results.numPassedTests} passed, ${results.numFailedTests} failed${skipped ? `, ${skipped} skipped` : ''}`;
    // After jest's own summary and the global teardown: the very last line of the run.
    process.once('exit', () => process.stderr.write(`${line}\n`));
  }
}
module.exports = SummaryReporter;

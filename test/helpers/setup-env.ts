/**
 * Jest `setupFiles` module: a quiet, deterministic AWS-ish environment for every test file.
 */

// LocalStack mode: remember the endpoints the developer set, once per jest worker, before any
// suite points process.env at its own emulators.
const ENDPOINT_VARS = ['AWS_ENDPOINT_URL', 'AWS_ENDPOINT_URL_DYNAMODB', 'AWS_ENDPOINT_URL_SQS'];
if (process.env['TOLLGATE_TEST_ENDPOINTS'] === undefined) {
  process.env['TOLLGATE_TEST_ENDPOINTS'] = JSON.stringify(
    Object.fromEntries(ENDPOINT_VARS.filter((k) => process.env[k]).map((k) => [k, process.env[k]])),
  );
}

// Fixed region so ARNs and queue URLs do not depend on the developer's shell.
process.env['AWS_REGION'] = 'us-east-1';
// Dummy credentials: the emulators do not check them, and the SDK must not go looking for
// a profile or the instance metadata service.
process.env['AWS_ACCESS_KEY_ID'] ??= 'local';
process.env['AWS_SECRET_ACCESS_KEY'] ??= 'local';
process.env['AWS_EC2_METADATA_DISABLED'] = 'true';

// POWERTOOLS_DEV pretty-prints logs and changes metric flushing; tests assert on the
// production behaviour.
delete process.env['POWERTOOLS_DEV'];
// EMF documents would drown the test output; TEST_LOG brings them back with the logs.
if (!process.env['TEST_LOG']) process.env['POWERTOOLS_METRICS_DISABLED'] = 'true';
// TEST_LOG=1 shows logs at DEBUG; TEST_LOG=<level> picks the level.
const testLog = process.env['TEST_LOG'];
process.env['POWERTOOLS_LOG_LEVEL'] =
  testLog === undefined || testLog === ''
    ? 'SILENT'
    : /^(TRACE|DEBUG|INFO|WARN|ERROR|CRITICAL)$/i.test(testLog)
      ? testLog.toUpperCase()
      : 'DEBUG';

// The v3 SDK warns once per process that it will drop Node 20 in 2027. The switch is read
// in @aws-sdk/core's emitWarningIfUnsupportedVersion (not in the public docs).
process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] = 'true';

export {};

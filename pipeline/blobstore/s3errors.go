package blobstore

import (
	"context"
	"errors"
	"fmt"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
)

// errExists: a conditional write found the key taken (412, or a
// multipart upload completed by an earlier attempt). Internal: Put turns
// it into "already delivered" or ErrConflict.
var errExists = errors.New("blobstore: key exists")

// permanentCodes are S3 error codes a retry cannot fix.
var permanentCodes = map[string]bool{
	"AccessDenied": true, "AllAccessDisabled": true, "AccountProblem": true,
	"InvalidAccessKeyId": true, "SignatureDoesNotMatch": true, "AuthorizationHeaderMalformed": true,
	"NoSuchBucket": true, "InvalidBucketName": true, "PermanentRedirect": true,
	"InvalidArgument": true, "InvalidRequest": true, "InvalidEncryptionAlgorithmError": true,
	"KMS.NotFoundException": true, "KMS.DisabledException": true, "KMS.KMSInvalidStateException": true,
	"NotImplemented": true, "MethodNotAllowed": true, "EntityTooLarge": true, "KeyTooLongError": true,
}

// transientCodes are 4xx codes that do clear up.
var transientCodes = map[string]bool{
	"RequestTimeout": true, "RequestTimeTooSkewed": true, "ExpiredToken": true, "TokenRefreshRequired": true,
	"SlowDown": true, "OperationAborted": true, "ConditionalRequestConflict": true,
}

// s3Error wraps err with the operation and key, marking failures a retry
// will not fix as permanent.
func s3Error(op, key string, err error) error {
	wrapped := fmt.Errorf("blobstore: s3 %s %q: %w", op, key, err)
	if isPermanent(err) {
		return permanent(wrapped)
	}
	return wrapped
}

func isPermanent(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if code := errorCode(err); permanentCodes[code] {
		return true
	} else if transientCodes[code] {
		return false
	}
	switch c := httpStatus(err); {
	case c == 408 || c == 409 || c == 429:
		return false
	case c >= 400 && c < 500:
		return true
	}
	return false
}

func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// httpStatus is the response status, 0 when none arrived.
func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func isNotFound(err error) bool {
	code := errorCode(err)
	return code == "NoSuchKey" || code == "NotFound" || (httpStatus(err) == 404 && code != "NoSuchBucket" && code != "NoSuchUpload")
}

func isPreconditionFailed(err error) bool {
	return httpStatus(err) == 412 || errorCode(err) == "PreconditionFailed"
}

func isNoSuchUpload(err error) bool { return errorCode(err) == "NoSuchUpload" }

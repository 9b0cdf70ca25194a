/* The error table: names, messages and classes for LS_E* codes, errno and LMDB codes. */
#include <errno.h>
#include <string.h>

#include <logship/error.h>

#include <lmdb.h>

const char *ls_strerror(int code)
{
    switch (code) {
#define LS__ERR_MSG(name, val, tr, msg)                                                            \
    case val:                                                                                      \
        return msg;
        LS_ERRNO_MAP(LS__ERR_MSG)
#undef LS__ERR_MSG
    case 0:
        return "success";
    default:
        break;
    }
    if (code >= MDB_KEYEXIST && code <= MDB_LAST_ERRCODE) return mdb_strerror(code);
    if (code < 0 && code > -4096) return strerror(-code);
    return "unknown error";
}

const char *ls_err_name(int code)
{
    switch (code) {
#define LS__ERR_NAME(name, val, tr, msg)                                                           \
    case val:                                                                                      \
        return "LS_E" #name;
        LS_ERRNO_MAP(LS__ERR_NAME)
#undef LS__ERR_NAME
    case 0:
        return "OK";
    case -EIO:
        return "EIO";
    case -ENOSPC:
        return "ENOSPC";
    case -ENOENT:
        return "ENOENT";
    case -EINTR:
        return "EINTR";
    default:
        return "UNKNOWN";
    }
}

bool ls_err_is_transient(int code)
{
    switch (code) {
#define LS__ERR_TR(name, val, tr, msg)                                                             \
    case val:                                                                                      \
        return tr;
        LS_ERRNO_MAP(LS__ERR_TR)
#undef LS__ERR_TR
    case -EINTR:
    case -EAGAIN:
    case -ENOSPC:
    case -EDQUOT:
    case -ECONNRESET:
    case -ECONNREFUSED:
    case -ETIMEDOUT:
    case -EPIPE:
    case -ENETUNREACH:
    case -EHOSTUNREACH:
        return true;
    default:
        return false;
    }
}

int ls_err_from_errno(int err)
{
    switch (err) {
    case 0:
        return 0;
    case ENOSPC:
    case EDQUOT:
        return LS_ENOSPC;
    case ENOMEM:
        return LS_ENOMEM;
    case ENOENT:
        return LS_ENOENT;
    case EEXIST:
        return LS_EEXIST;
    case EINVAL:
        return LS_EINVAL;
    case EBUSY:
    case EAGAIN:
        return LS_EBUSY;
    default:
        return LS_EIO;
    }
}
